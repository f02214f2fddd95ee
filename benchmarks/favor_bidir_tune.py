"""Tune the bidirectional FAVOR+ kernels on the GPU: rows per block, feature tile, warps.

For each setting, the bare `favor_attention_kernel` fwd+bwd (bf16, 256 features, d 64) at
two shapes: one long sequence (1 x 8 heads x 64K) and LRA's 4K batch (32 x 4 heads x 4K);
median ms per shape. The module's constants are set before each trace.

  python benchmarks/favor_bidir_tune.py --out tune.json
"""
import argparse
import itertools
import sys

import jax
import jax.numpy as jnp

from attention_gpu import measure  # pylint: disable=g-bad-import-order
from bench_rows import measured, save_rows  # pylint: disable=g-bad-import-order
from plait.layers.attention import favor_bidir_kernel as fbk
from plait.layers.attention.favor_features import orthogonal_random_features

SHAPES = {'64K x 8 heads': (1, 8, 65536), 'LRA 4K': (32, 4, 4096)}


def step(batch, heads, length, interpret=False):
  keys = jax.random.split(jax.random.key(0), 4)
  q, k, v = (jax.random.normal(key, (batch, heads, length, 64), jnp.bfloat16)
             for key in keys[:3])
  projection = jax.vmap(lambda key: orthogonal_random_features(key, 256, 64))(
      jax.random.split(keys[3], heads))
  loss = lambda q, k, v: jnp.sum(
      fbk.favor_attention_kernel(q, k, v, None, projection, interpret=interpret).astype(
          jnp.float32))
  return jax.jit(jax.grad(loss, argnums=(0, 1, 2))), [q, k, v]


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--rows', type=int, nargs='+', default=[32, 64, 128])
  p.add_argument('--features', type=int, nargs='+', default=[32, 64, 128])
  p.add_argument('--warps', type=int, nargs='+', default=[4, 8])
  p.add_argument('--budget_s', type=float, default=0.2)
  p.add_argument('--out', default=None)
  p.add_argument('--tiny', action='store_true', help='CPU smoke: small shapes, interpreter')
  args = p.parse_args(argv)
  shapes = {'tiny': (1, 2, 256)} if args.tiny else SHAPES
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  rows = []
  for block, tile, warps in itertools.product(args.rows, args.features, args.warps):
    fbk._ROWS, fbk._FEATURES = block, tile  # pylint: disable=protected-access
    for name in fbk.COMPILER_PARAMS:
      fbk.COMPILER_PARAMS[name] = (warps, 2)
    for shape, dims in shapes.items():
      def fill(row, dims=dims):
        row['ms'], row['gib'] = measure(*step(*dims, interpret=args.tiny), args.budget_s)
      rows.append(measured(dict(rows=block, features=tile, warps=warps, shape=shape), fill))
    save_rows(rows, args.out)
  return 0


if __name__ == '__main__':
  sys.exit(main())
