"""Correctness on the GPU: LSH on the fused kernel equals the XLA LSH path, values and grads.

  python benchmarks/lsh_kernel_gpu.py   # prints relative errors; exits 1 if too large
  python benchmarks/lsh_kernel_gpu.py --keys raw   # only LSHKind(normalize_keys=False)
  python benchmarks/lsh_kernel_gpu.py --tune 4096 65536 --blocks 64 128   # tiles, warps
  python benchmarks/lsh_kernel_gpu.py --interpret --cases 256 0 201 1   # CPU dry run (slow)

--tune times the bare LSH kind on the kernel (attention_gpu.py's `lsh-core`: hash, sort,
kernel, combine, fwd+bwd) for each kernel block size (positions per tile, `fused.KERNEL_BLOCKS`)
and Triton (num_warps, num_stages) given for all three kernels, or for one (`--only`, the
others at `sparse_kernel.COMPILER_PARAMS`), and the whole layer (`lsh_pallas`) per block at
the default warps, as JSON lines.

Both paths get the same inputs (so the same hash and sort; buckets are checked equal):
float32 (the kernel's float32 dots may use TF32) and bf16 (each path in bf16, errors
against the float32 XLA run of the bf16 inputs' float32 copy). 2 hashes, chunk 256, one
chunk back, 8 heads of 48 (zero-padded to the kernel of 64) and of 64; padded and odd
lengths, causal and bidirectional; unit-RMS keys and raw keys (the queries themselves,
`normalize_keys=False`). Padding queries' outputs are unspecified, so they are left out of
the output and the loss.
"""
import argparse
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from attention_gpu import (  # pylint: disable=g-bad-import-order
    layer_step, lsh, lsh_core_step, measure)
from plait.layers.attention import sparse_kernel
from plait.layers.attention.lsh import LSHKind, fused

TOLERANCE = {'float32': 1e-2, 'bfloat16': 3e-2}


def rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def value_and_grads(kind, q, v, mask):
  w = jax.random.normal(jax.random.key(9), q.shape, jnp.float32)
  if mask is not None:
    w = w * mask[:, None, :, None]
  def run(q, v):
    out, pull = jax.vjp(
        lambda q, v: kind.attend_batched(q, None, v, mask, (), None, 'eval')[0], q, v)
    grads = pull(w.astype(out.dtype))
    buckets = kind.buckets(q, mask, None, 'eval')  # what both paths sort by
    return (out * (1 if mask is None else mask[:, None, :, None]),) + grads, buckets
  return jax.jit(run)(q, v)


def tune(lengths, blocks, configs, only):
  """JSON rows: the bare LSH kind's fwd+bwd ms per (block, warps, stages), then the layer's."""
  defaults, blocks_tried = dict(sparse_kernel.COMPILER_PARAMS), fused.KERNEL_BLOCKS
  for causal in (False, True):
    for length in lengths:
      for block in blocks:
        fused.KERNEL_BLOCKS = (block,) + tuple(b for b in blocks_tried if b < block)
        for warps, stages in configs:
          for name in sparse_kernel.COMPILER_PARAMS:
            sparse_kernel.COMPILER_PARAMS[name] = (
                (warps, stages) if only in (None, name) else defaults[name])
          row = dict(what='core', causal=causal, length=length, block=block, warps=warps,
                     stages=stages, only=only)
          step, args, flops = lsh_core_step(causal, length)
          row['ms'] = measure(step, args, 0.5)[0]
          row['tflops'] = flops / (row['ms'] * 1e-3) / 1e12
          print(json.dumps(row), flush=True)
        sparse_kernel.COMPILER_PARAMS.update(defaults)
        step, args = layer_step(lsh('pallas')(causal, length), length)
        row = dict(what='layer', causal=causal, length=length, block=block)
        row['ms'], row['gib'] = measure(step, args, 0.5)
        print(json.dumps(row), flush=True)


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--tune', type=int, nargs='*', help='time settings at these lengths instead')
  p.add_argument('--blocks', type=int, nargs='+', default=[64], help='--tune: kernel blocks')
  p.add_argument('--warps_stages', type=int, nargs='+', default=[4, 2],
                 help='--tune: (num_warps, num_stages) pairs, flattened')
  p.add_argument('--only', choices=sorted(sparse_kernel.COMPILER_PARAMS), default=None,
                 help='--tune: set only this kernel\'s warps and stages')
  p.add_argument('--cases', type=int, nargs='+', default=[4096, 0, 3037, 1],
                 help='(length, padded) pairs, flattened')
  p.add_argument('--d_heads', type=int, nargs='+', default=[48, 64],
                 help='head widths checked (48: the kernel of 64, zero-padded)')
  p.add_argument('--keys', nargs='+', choices=['unit', 'raw'], default=['unit', 'raw'],
                 help='shared-QK keys checked: unit RMS (normalize_keys=True) and/or raw')
  p.add_argument('--interpret', action='store_true',
                 help='the checks on the Pallas interpreter (CPU dry runs; not with --tune)')
  args = p.parse_args(argv)
  if args.interpret and args.tune:
    p.error('--interpret checks the kernel; --tune times it and needs the GPU')
  kernel = 'interpret' if args.interpret else 'pallas'
  if args.tune:
    print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
    ws = args.warps_stages
    tune(args.tune, args.blocks, list(zip(ws[::2], ws[1::2])), args.only)
    return 0
  cases = [(n, bool(m)) for n, m in zip(args.cases[::2], args.cases[1::2])]
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  bad = 0
  for d_head, causal, key_kind in ((d, c, k) for d in args.d_heads for k in args.keys
                                   for c in (False, True)):
    for length, masked in cases:
      keys = jax.random.split(jax.random.key(length), 2)
      q, v = (jax.random.normal(key, (2, 8, length, d_head), jnp.float32) for key in keys)
      mask = (jnp.arange(length)[None, :] < jnp.array([[length], [length * 3 // 4]])
              if masked else None)
      make = lambda impl: LSHKind(n_hashes=2, n_buckets=16, chunk_len=256, causal=causal,
                                  implementation=impl, normalize_keys=key_kind == 'unit')
      for dtype in (jnp.float32, jnp.bfloat16):
        q_d, v_d = q.astype(dtype), v.astype(dtype)
        ref, ref_buckets = value_and_grads(make('xla'), q_d.astype(jnp.float32),
                                           v_d.astype(jnp.float32), mask)
        got, buckets = value_and_grads(make(kernel), q_d, v_d, mask)
        same = bool(jnp.all(buckets == ref_buckets))
        errors = [rel(a.astype(jnp.float32), b) for a, b in zip(got, ref)]
        ok = same and max(errors) < TOLERANCE[jnp.dtype(dtype).name]
        bad += not ok
        print(f'd_head={d_head} keys={key_kind} causal={causal} length={length} '
              f'masked={masked} {jnp.dtype(dtype).name}: '
              f'buckets {"equal" if same else "DIFFER"}, rel err out/dq/dv = '
              f'{", ".join(f"{e:.2e}" for e in errors)} {"ok" if ok else "TOO LARGE"}',
              flush=True)
  return 1 if bad else 0


if __name__ == '__main__':
  sys.exit(main())
