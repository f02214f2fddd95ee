"""Correctness on the GPU: the fused block-sparse kernel equals the XLA path, values and grads.

  python benchmarks/block_sparse_kernel_gpu.py   # prints relative errors; exits 1 if too large

float32 inputs against the float32 XLA path (the kernel's float32 dots may use TF32), and
bf16 inputs against the same float32 reference; padded and odd lengths, both directions.
"""
import sys

import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.attention import BlockSparseKind

TOLERANCE = {'float32': 1e-2, 'bfloat16': 3e-2}


def rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def value_and_grads(kind, q, k, v, mask):
  fn = lambda q, k, v: kind.attend_batched(q, k, v, mask, (), None, 'eval')[0]
  w = jax.random.normal(jax.random.key(9), q.shape, jnp.float32)
  def run(q, k, v):
    out, pull = jax.vjp(fn, q, k, v)
    return (out,) + pull(w.astype(out.dtype))
  return jax.jit(run)(q, k, v)


def main():
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  bad = 0
  for causal in (False, True):
    for length, masked in ((4096, False), (3037, True)):
      keys = jax.random.split(jax.random.key(length), 3)
      q, k, v = (jax.random.normal(key, (2, 4, length, 64), jnp.float32) for key in keys)
      mask = (jnp.arange(length)[None, :] < jnp.array([[length], [length * 3 // 4]])
              if masked else None)
      make = lambda impl: BlockSparseKind(64, 3, seed=1, causal=causal, implementation=impl)
      ref = value_and_grads(make('xla'), q, k, v, mask)
      for dtype in (jnp.float32, jnp.bfloat16):
        args = (t.astype(dtype) for t in (q, k, v))
        got = value_and_grads(make('pallas'), *args, mask)
        errors = [rel(a.astype(jnp.float32), b) for a, b in zip(got, ref)]
        ok = max(errors) < TOLERANCE[jnp.dtype(dtype).name]
        bad += not ok
        print(f'causal={causal} length={length} masked={masked} {jnp.dtype(dtype).name}: '
              f'rel err out/dq/dk/dv = {", ".join(f"{e:.2e}" for e in errors)} '
              f'{"ok" if ok else "TOO LARGE"}', flush=True)
  return 1 if bad else 0


if __name__ == '__main__':
  sys.exit(main())
