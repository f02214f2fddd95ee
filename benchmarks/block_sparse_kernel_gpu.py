"""Correctness on the GPU: the fused block-sparse kernel equals the XLA path, values and grads.

  python benchmarks/block_sparse_kernel_gpu.py   # prints relative errors; exits 1 if too large
  python benchmarks/block_sparse_kernel_gpu.py --tune 16384 65536   # Triton warps/stages

float32 inputs against the float32 XLA path (the kernel's float32 dots may use TF32), and
bf16 inputs against the same float32 reference; padded and odd lengths, both directions,
head widths 48 (zero-padded to the kernel of 64) and 64.
"""
import argparse
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from attention_gpu import block_sparse_core_step, measure  # pylint: disable=g-bad-import-order
from plait.layers.attention import BlockSparseKind, sparse_kernel

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


def tune(lengths, configs=((4, 2),)):
  """Times the bare kernel (fwd alone, fwd+bwd) with every kernel at each (warps, stages)."""
  for causal in (False, True):
    for length in lengths:
      for warps, stages in configs:
        for name in sparse_kernel.COMPILER_PARAMS:
          sparse_kernel.COMPILER_PARAMS[name] = (warps, stages)
        step, args, flops = block_sparse_core_step(causal, length)
        row = dict(causal=causal, length=length, warps=warps, stages=stages)
        row['fwd_bwd_ms'] = measure(step, args, 0.5)[0]
        row['fwd_ms'] = measure(fwd_step(causal, length), args, 0.5)[0]
        row['tflops'] = flops / (row['fwd_bwd_ms'] * 1e-3) / 1e12
        print(json.dumps(row), flush=True)


def fwd_step(causal, length):
  """The forward alone of `block_sparse_core_step`."""
  from plait.layers.attention import block_sparse  # pylint: disable=import-outside-toplevel
  n_blocks = -(-length // 64)
  plan = block_sparse.kernel_plan(n_blocks, 3, 0, causal)
  pos = jnp.arange(n_blocks * 64, dtype=jnp.int32)[None, None]
  return jax.jit(lambda q, k, v: sparse_kernel.sparse_attention(q, k, v, pos, pos, plan, causal))


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--tune', type=int, nargs='*', help='time configs at these lengths instead')
  p.add_argument('--warps_stages', type=int, nargs='+', default=[4, 2],
                 help='--tune: (num_warps, num_stages) pairs, flattened')
  p.add_argument('--cases', type=int, nargs='+', default=[4096, 0, 3037, 1],
                 help='check: (length, padded) pairs, flattened')
  p.add_argument('--d_heads', type=int, nargs='+', default=[48, 64],
                 help='check: head widths (48: the kernel of 64, zero-padded)')
  args = p.parse_args(argv)
  pairs = lambda xs: list(zip(xs[::2], xs[1::2]))
  args.cases = [(n, bool(m)) for n, m in pairs(args.cases)]
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  if args.tune:
    tune(args.tune, pairs(args.warps_stages))
    return 0
  bad = 0
  for d_head, causal in ((d, c) for d in args.d_heads for c in (False, True)):
    for length, masked in args.cases:
      keys = jax.random.split(jax.random.key(length), 3)
      q, k, v = (jax.random.normal(key, (2, 4, length, d_head), jnp.float32) for key in keys)
      mask = (jnp.arange(length)[None, :] < jnp.array([[length], [length * 3 // 4]])
              if masked else None)
      make = lambda impl: BlockSparseKind(64, 3, seed=1, causal=causal, implementation=impl)
      ref = value_and_grads(make('xla'), q, k, v, mask)
      for dtype in (jnp.float32, jnp.bfloat16):
        got = value_and_grads(make('pallas'), *(t.astype(dtype) for t in (q, k, v)), mask)
        errors = [rel(a.astype(jnp.float32), b) for a, b in zip(got, ref)]
        ok = max(errors) < TOLERANCE[jnp.dtype(dtype).name]
        bad += not ok
        print(f'd_head={d_head} causal={causal} length={length} masked={masked} '
              f'{jnp.dtype(dtype).name}: '
              f'rel err out/dq/dk/dv = {", ".join(f"{e:.2e}" for e in errors)} '
              f'{"ok" if ok else "TOO LARGE"}', flush=True)
  return 1 if bad else 0


if __name__ == '__main__':
  sys.exit(main())
