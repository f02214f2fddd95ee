"""Tune the causal FAVOR+ feature-map kernels on the GPU: rows per block, feature tile, warps.

For each setting, the bare `query_features_kernel` + `key_features_kernel` fwd+bwd (bf16,
256 features, d 64, 8 heads vmapped) at 64K tokens, checked against the module's default
setting (values and gradients, largest difference relative to the largest value); then the
whole causal FAVOR+ layer (attention_gpu.py's `favor`) at each --layer_lengths for the
default and the --top fastest settings. The module's constants are set before each trace.

  python benchmarks/favor_feature_tune.py --out tune.json
  python benchmarks/favor_feature_tune.py --tiny     # CPU smoke: small shapes, interpreter
"""
import argparse
import itertools
import sys

import jax
import jax.numpy as jnp

from attention_gpu import favor, layer_step, measure  # pylint: disable=g-bad-import-order
from bench_rows import measured, save_rows  # pylint: disable=g-bad-import-order
from plait.layers.attention import favor_feature_kernel as ffk
from plait.layers.attention.favor_features import orthogonal_random_features

DEFAULT = (ffk._ROWS, ffk._FEATURES, ffk.COMPILER_PARAMS[0])  # pylint: disable=protected-access


def setting(rows, features, warps):
  ffk._ROWS, ffk._FEATURES = rows, features  # pylint: disable=protected-access
  ffk.COMPILER_PARAMS = (warps, ffk.COMPILER_PARAMS[1])


def features_step(heads, length, interpret=False):
  """jit(grad) of sum(query features * gq) + sum(key features * gk) over (heads, L, 64)."""
  keys = jax.random.split(jax.random.key(0), 5)
  q, k = (jax.random.normal(key, (heads, length, 64), jnp.bfloat16) for key in keys[:2])
  gq, gk = (jax.random.normal(key, (heads, length, 256), jnp.float32) for key in keys[2:4])
  projection = orthogonal_random_features(keys[4], 256, 64)
  mask = jnp.arange(length) < length - 3   # Three padded keys.
  def loss(q, k):
    qf = jax.vmap(lambda x: ffk.query_features_kernel(x, projection, 1e-6, jnp.bfloat16,
                                                      interpret))(q)
    kf = jax.vmap(lambda x: ffk.key_features_kernel(x, projection, mask, jnp.bfloat16,
                                                    interpret))(k)
    return jnp.sum(qf * gq) + jnp.sum(kf * gk), (qf, kf)
  return jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True)), [q, k]


def relative_difference(a, b):
  leaves = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
  return max(float(jnp.max(jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32)))
                   / (float(jnp.max(jnp.abs(y.astype(jnp.float32)))) + 1e-30))
             for x, y in leaves)


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--rows', type=int, nargs='+', default=[32, 64, 128])
  p.add_argument('--features', type=int, nargs='+', default=[64, 128])
  p.add_argument('--warps', type=int, nargs='+', default=[4, 8])
  p.add_argument('--length', type=int, default=65536, help='bare kernels: tokens')
  p.add_argument('--layer_lengths', type=int, nargs='*', default=[4096, 16384, 65536])
  p.add_argument('--top', type=int, default=2, help='layer: this many fastest settings')
  p.add_argument('--budget_s', type=float, default=0.3)
  p.add_argument('--out', default=None)
  p.add_argument('--tiny', action='store_true', help='CPU smoke: small shapes, interpreter')
  args = p.parse_args(argv)
  heads, length = (2, 200) if args.tiny else (8, args.length)
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  step, inputs = features_step(heads, length, args.tiny)
  setting(*DEFAULT)
  reference = step(*inputs)
  rows = []
  settings = [DEFAULT] + [s for s in itertools.product(args.rows, args.features, args.warps)
                          if s != DEFAULT]
  for rows_, features, warps in settings:
    setting(rows_, features, warps)
    step, inputs = features_step(heads, length, args.tiny)
    def fill(row, step=step, inputs=inputs):
      row['rel_diff'] = relative_difference(step(*inputs), reference)
      row['ms'], row['gib'] = measure(step, inputs, args.budget_s)
    rows.append(measured(dict(part='features', rows=rows_, features=features, warps=warps,
                              length=length), fill))
    save_rows(rows, args.out)
  timed = sorted((r for r in rows if 'ms' in r), key=lambda r: r['ms'])
  chosen = [DEFAULT] + [(r['rows'], r['features'], r['warps']) for r in timed
                        if (r['rows'], r['features'], r['warps']) != DEFAULT][:args.top]
  for s, n in itertools.product(chosen, [] if args.tiny else args.layer_lengths):
    setting(*s)
    def fill(row, n=n):
      row['ms'], row['gib'] = measure(*layer_step(favor(128)(True, n), n), args.budget_s)
    rows.append(measured(dict(part='layer', rows=s[0], features=s[1], warps=s[2], length=n),
                         fill))
    save_rows(rows, args.out)
  setting(*DEFAULT)
  return 0


if __name__ == '__main__':
  sys.exit(main())
