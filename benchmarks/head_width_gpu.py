"""Block-sparse and LSH layers at head widths the kernels take zero-padded: kernel vs XLA.

The fused sparse kernels (`sparse_kernel.py`) are compiled for head widths 16, 32, 64 and
128; other widths up to 128 run zero-padded to the next one (48 and 96 on the kernels of 64
and 128). Per head width, one `Attention` layer as `attention_gpu.py` makes it (8 heads, but
d_model = 8 x d_head; bf16, batch 1, fwd+bwd; block-sparse: block 64, 3 random blocks; LSH:
2 hashes, chunk 256, one chunk back) on the kernel (`pallas`) and on the XLA path, with
cuDNN flash beside, and how far the output and gradients (input and every weight; random
cotangent) of each bf16 path are from the float32 XLA path's: `error` = the worst, over
these arrays, of max |bf16 - float32| / max |float32|, for the kernel and for XLA in bf16.
The key projection's bias is left out: its gradient is 0 in exact arithmetic (adding one
vector to every key adds the same logit to a query's whole row, which softmax ignores), so
both paths give noise there. LSH's errors are larger in both paths: bf16 rounding moves some
tokens to other buckets.

  python benchmarks/head_width_gpu.py --widths 48 64 96 128 --length 16384 --out w.json
  python benchmarks/head_width_gpu.py --tiny      # CPU smoke sizes, the kernel interpreted
"""
import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

import attention_gpu as ag  # pylint: disable=g-bad-import-order
from bench_rows import measured, save_rows  # pylint: disable=g-bad-import-order
import plait.layers as tl
from plait.shapes import ShapeDtype


def make_layer(kind, causal, d_head, length, implementation):
  """attention_gpu.py's layer of `kind` ('block_sparse', 'lsh' or 'cudnn'), heads d_head wide."""
  d_model = ag.N_HEADS * d_head
  if kind == 'cudnn':
    return (tl.CausalAttention if causal else tl.SelfAttention)(
        d_model, ag.N_HEADS, implementation=implementation, mode='eval')
  if kind == 'block_sparse':
    return ag.block_sparse_layer(causal, length, implementation, d_model)
  return ag.lsh(implementation, d_model)(causal, length)


def inputs(d_head, length):
  """(the input signature, a fixed random (1, length, 8 x d_head) bf16 input)."""
  sig = ShapeDtype((1, length, ag.N_HEADS * d_head), jnp.bfloat16)
  x = jax.random.normal(jax.random.key(1), sig.shape, jnp.bfloat16)
  return sig, x


def grad_step(layer, sig, dtype=jnp.bfloat16):
  """(jitted (x, weights) -> ((dx, dweights), y), the layer's weights in dtype)."""
  weights, state = layer.init(sig, rng=jax.random.key(0))
  weights = jax.tree_util.tree_map(lambda w: w.astype(dtype), weights)
  # A random cotangent: the sum's gradients cancel to noise in the query/key weights.
  r = jax.random.normal(jax.random.key(3), sig.shape, jnp.float32)
  def loss(x, w):
    y, _ = layer.pure_fn(x, w, state, rng=jax.random.key(2))
    return jnp.sum(y.astype(jnp.float32) * r), y
  return jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True)), weights


def error(got, want):
  """Worst max |got - want| / max |want| over the leaves of two equal pytrees, but the key
  bias's (see the module)."""
  worst = 0.0
  for (path, b), a in zip(jax.tree_util.tree_leaves_with_path(want),
                          jax.tree_util.tree_leaves(got)):
    if jax.tree_util.keystr(path).endswith('.k.bias'):
      continue
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    worst = max(worst, float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)))
  return worst


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--widths', type=int, nargs='+', default=[48, 64, 96, 128])
  p.add_argument('--length', type=int, default=16384)
  p.add_argument('--kinds', nargs='+', default=['block_sparse', 'lsh'])
  p.add_argument('--causal', nargs='+', default=['causal'])
  p.add_argument('--budget_s', type=float, default=1.0)
  p.add_argument('--tiny', action='store_true', help='CPU sizes, kernel interpreted, no cuDNN')
  p.add_argument('--out', default=None)
  args = p.parse_args(argv)
  length = 512 if args.tiny else args.length
  kernel = 'interpret' if args.tiny else 'pallas'
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  rows = []
  for direction in args.causal:
    causal = direction == 'causal'
    for d_head in args.widths:
      sig, x = inputs(d_head, length)
      if not args.tiny:
        def fill_cudnn(row, causal=causal, d_head=d_head, sig=sig, x=x):
          step, weights = grad_step(make_layer('cudnn', causal, d_head, length, 'cudnn'), sig)
          row['ms'], row['gib'] = ag.measure(step, [x, weights], args.budget_s)
        rows.append(measured(dict(kind='cudnn', direction=direction, d_head=d_head,
                                  length=length), fill_cudnn))
      for kind in args.kinds:
        def fill(row, kind=kind, causal=causal, d_head=d_head, sig=sig, x=x):
          step, weights = grad_step(make_layer(kind, causal, d_head, length, 'xla'), sig,
                                    jnp.float32)
          exact = step(x.astype(jnp.float32), weights)
          for impl in ('xla', kernel):
            step, weights = grad_step(make_layer(kind, causal, d_head, length, impl), sig)
            row[f'{impl}_ms'], row[f'{impl}_gib'] = ag.measure(step, [x, weights], args.budget_s)
            row[f'{impl}_error'] = error(step(x, weights), exact)
        rows.append(measured(dict(kind=kind, direction=direction, d_head=d_head,
                                  length=length), fill))
        save_rows(rows, args.out)
  print_table(rows, kernel)


def print_table(rows, kernel):
  cudnn = {(r['direction'], r['d_head']): r.get('ms') for r in rows if r['kind'] == 'cudnn'}
  print(f'\n| direction | d_head | kind | {kernel} ms | xla ms | cuDNN ms | {kernel} / cuDNN | '
        f'error vs float32: {kernel} / xla |')
  print('| --- | --- | --- | --- | --- | --- | --- | --- |')
  for r in rows:
    if r['kind'] == 'cudnn':
      continue
    if 'error' in r:
      print(f"| {r['direction']} | {r['d_head']} | {r['kind']} | {r['error'][:80]} | | | | |")
      continue
    base = cudnn.get((r['direction'], r['d_head']))
    ms = r[f'{kernel}_ms']
    ratio = f'{ms / base:.2f}' if base else '-'
    print(f"| {r['direction']} | {r['d_head']} | {r['kind']} | {ms:.2f} | {r['xla_ms']:.2f} | "
          f"{f'{base:.2f}' if base else '-'} | {ratio} | {r[f'{kernel}_error']:.1e} / "
          f"{r['xla_error']:.1e} |")


if __name__ == '__main__':
  sys.exit(main())
