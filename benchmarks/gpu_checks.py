"""Correctness on the GPU: the cuDNN flash path equals the XLA path (and a float32 reference).

  python benchmarks/gpu_checks.py     # prints relative errors; exits 1 if any is too large
"""
import sys

import jax
import jax.numpy as jnp
import numpy as np

import plait.layers as tl
from plait.shapes import ShapeDtype


def rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main():
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}')
  bad = 0
  for causal in (False, True):
    for length, use_mask in ((1024, False), (4096, False), (1000, True)):
      make = tl.CausalAttention if causal else tl.SelfAttention
      layers = {impl: make(512, 8, implementation=impl, use_mask=use_mask, mode='eval')
                for impl in ('cudnn', 'xla')}
      x = jax.random.normal(jax.random.key(length), (2, length, 512), jnp.float32)
      mask = jnp.arange(length)[None, :] < jnp.array([[length], [length * 3 // 4]])
      inputs = (x, mask) if use_mask else x
      sig = ShapeDtype(x.shape, x.dtype)
      w, s = layers['xla'].init((sig, ShapeDtype(mask.shape, jnp.bool_)) if use_mask else sig,
                                rng=jax.random.key(0))
      ref = layers['xla'].pure_fn(inputs, w, s)[0]
      ref = ref[0] if use_mask else ref
      wb = jax.tree_util.tree_map(lambda t: t.astype(jnp.bfloat16), w)
      xb = (x.astype(jnp.bfloat16), mask) if use_mask else x.astype(jnp.bfloat16)
      outs = {}
      for impl, layer in layers.items():
        y = jax.jit(lambda i, w, layer=layer: layer.pure_fn(i, w, s)[0])(xb, wb)
        outs[impl] = y[0] if use_mask else y
      if use_mask:  # rows that are padding queries are not compared
        keep = np.asarray(mask)[..., None]
        outs = {k: np.where(keep, v.astype(jnp.float32), 0) for k, v in outs.items()}
        ref = np.where(keep, ref, 0)
      e_cudnn, e_xla = rel(outs['cudnn'], ref), rel(outs['xla'], ref)
      e_pair = rel(outs['cudnn'], outs['xla'])
      ok = e_cudnn < 2e-2 and e_pair < 2e-2
      bad += not ok
      print(f'causal={causal} L={length} mask={use_mask}: cudnn vs f32 {e_cudnn:.2e}, '
            f'xla(bf16) vs f32 {e_xla:.2e}, cudnn vs xla {e_pair:.2e} {"ok" if ok else "BAD"}')
  return 1 if bad else 0


if __name__ == '__main__':
  sys.exit(main())
