"""Tune the causal FAVOR+ feature-map kernels on the GPU: rows per block, feature tile, warps,
and how the projections' dots are made (`PROJECTION_DOTS`: split, tf32, single).

For each setting, the bare `query_features_kernel` + `key_features_kernel` fwd+bwd (bf16,
256 features, d 64, 8 heads vmapped) at 64K tokens, checked against the module's default
setting; then the whole causal FAVOR+ layer (attention_gpu.py's `favor`) at each
--layer_lengths for the default and the --top fastest settings. The module's constants are
set before each trace.

Each setting runs in a Python of its own with --setting_timeout_s: one whose kernels do not
compile (or run) in time gets a row with its error, and the sweep goes on (in one process, a
setting of 128 rows printed nothing for 190 s and took the rest of the sweep with it:
RESULTS.md section 48). A row gives the compile and run times apart. The check (rel_diff):
per output (features and gradients), the sums of w * x (w = cos 0, cos 1, ... over its
elements) and of |x| against the default's, relative to the default's sum of |x|; and
(oracle_err) the features' largest error against the float32 XLA maps of the same inputs,
relative to their largest value (bf16 features: 2^-9 from rounding alone).

  python benchmarks/favor_feature_tune.py --out tune.json
  python benchmarks/favor_feature_tune.py --tiny     # CPU smoke: small shapes, interpreter
"""
import argparse
import itertools
import json
import subprocess
import sys
import time

import jax
import jax.numpy as jnp

from attention_gpu import favor, layer_step, measure  # pylint: disable=g-bad-import-order
from bench_rows import measured, save_rows  # pylint: disable=g-bad-import-order
from plait.layers.attention import favor_feature_kernel as ffk
from plait.layers.attention.favor_features import (key_features, orthogonal_random_features,
                                                   query_features)

DEFAULT = (ffk._ROWS, ffk._FEATURES, ffk.COMPILER_PARAMS[0],  # pylint: disable=protected-access
           ffk.PROJECTION_DOTS)


def setting(rows, features, warps, dots):
  ffk._ROWS, ffk._FEATURES = rows, features  # pylint: disable=protected-access
  ffk.COMPILER_PARAMS = (warps, ffk.COMPILER_PARAMS[1])
  ffk.PROJECTION_DOTS = dots


def features_step(heads, length, interpret=False):
  """jit(grad) of sum(query features * gq) + sum(key features * gk) over (heads, L, 64), its
  [q, k], and a function of no argument giving favor_features' float32 maps of them (the
  oracle)."""
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
  def oracle():
    up = lambda x: x.astype(jnp.float32)
    return (jax.vmap(lambda x: query_features(up(x), projection, 'softmax', 1e-6))(q),
            jax.vmap(lambda x: key_features(up(x), projection, 'softmax', 1e-6, mask))(k))
  return jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True)), [q, k], oracle


def oracle_error(features, want):
  """The kernels' (query, key) features against the oracle's: the largest error relative to
  the largest value, over both maps."""
  return max(float(jnp.max(jnp.abs(g.astype(jnp.float32) - w)) / jnp.max(jnp.abs(w)))
             for g, w in zip(features, want))


def fingerprint(tree):
  """Per leaf, [sum(w * x), sum(|x|)] in float32, w = cos(0, 1, 2, ...) over its elements."""
  def one(x):
    x = x.astype(jnp.float32).ravel()
    return [float(jnp.sum(jnp.cos(jnp.arange(x.size, dtype=jnp.float32)) * x)),
            float(jnp.sum(jnp.abs(x)))]
  return [one(x) for x in jax.tree_util.tree_leaves(tree)]


def fingerprint_difference(got, want):
  """Largest difference of the fingerprints' sums, relative to each leaf's sum of |x|."""
  return max(max(abs(g[0] - w[0]), abs(g[1] - w[1])) / (w[1] + 1e-30)
             for g, w in zip(got, want))


def relative_difference(a, b):
  """Largest elementwise difference over the trees' leaves, relative to b's largest value
  (favor_product_tune.py's check, in one process)."""
  leaves = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
  return max(float(jnp.max(jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32)))
                   / (float(jnp.max(jnp.abs(y.astype(jnp.float32)))) + 1e-30))
             for x, y in leaves)


def features_size(args):
  """(heads, tokens) of the bare kernels' run."""
  return (2, 200) if args.tiny else (8, args.length)


def run_one(args, rows_, features, warps, dots):
  """This process: one setting, bare kernels (args.layer_length None) or the layer."""
  setting(rows_, features, warps, dots)
  row = dict(rows=rows_, features=features, warps=warps, dots=dots)
  if args.layer_length is None:
    heads, length = features_size(args)
    row.update(part='features', length=length)
    step, inputs, oracle = features_step(heads, length, args.tiny)
  else:
    row.update(part='layer', length=args.layer_length)
    step, inputs = layer_step(favor(128)(True, args.layer_length), args.layer_length)
  def fill(row):
    start = time.perf_counter()
    compiled = step.lower(*inputs).compile()
    row['compile_s'] = round(time.perf_counter() - start, 2)
    if row['part'] == 'features':
      outputs = compiled(*inputs)
      row['fingerprint'] = fingerprint(outputs)
      row['oracle_err'] = oracle_error(outputs[1], oracle())
    row['ms'], row['gib'] = measure(step, inputs, args.budget_s, compiled)
  measured(row, fill)


def run_child(args, s, layer_length=None):
  """One setting in a Python of its own: its JSON row, or a row with the error."""
  cmd = [sys.executable, __file__, '--one', *map(str, s[:3]), '--one_dots', s[3],
         '--length', str(args.length),
         '--budget_s', str(args.budget_s)] + (['--tiny'] if args.tiny else []) + (
             [] if layer_length is None else ['--layer_length', str(layer_length)])
  row = dict(part='features' if layer_length is None else 'layer', rows=s[0], features=s[1],
             warps=s[2], dots=s[3], length=layer_length or features_size(args)[1])
  try:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.setting_timeout_s)
    lines = [l for l in out.stdout.splitlines() if l.startswith('{')]
    if lines:
      return json.loads(lines[-1])
    row['error'] = f'exit {out.returncode}: ' + (out.stderr.strip().splitlines() or [''])[-1][:300]
  except subprocess.TimeoutExpired:
    row['error'] = f'TimeoutExpired: no result in {args.setting_timeout_s} s'
  return row


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--rows', type=int, nargs='+', default=[32, 64, 128])
  p.add_argument('--features', type=int, nargs='+', default=[64, 128])
  p.add_argument('--warps', type=int, nargs='+', default=[4, 8])
  p.add_argument('--dots', nargs='+', choices=ffk.PROJECTION_DOTS_SETTINGS,
                 default=[DEFAULT[3]])
  p.add_argument('--length', type=int, default=65536, help='bare kernels: tokens')
  p.add_argument('--layer_lengths', type=int, nargs='*', default=[4096, 16384, 65536])
  p.add_argument('--top', type=int, default=2, help='layer: this many fastest settings')
  p.add_argument('--budget_s', type=float, default=0.3)
  p.add_argument('--setting_timeout_s', type=float, default=90)
  p.add_argument('--out', default=None)
  p.add_argument('--tiny', action='store_true', help='CPU smoke: small shapes, interpreter')
  p.add_argument('--one', type=int, nargs=3, default=None, help=argparse.SUPPRESS)
  p.add_argument('--one_dots', choices=ffk.PROJECTION_DOTS_SETTINGS, default=DEFAULT[3],
                 help=argparse.SUPPRESS)
  p.add_argument('--layer_length', type=int, default=None, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.one:
    run_one(args, *args.one, args.one_dots)
    return 0
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  settings = [DEFAULT] + [s for s in itertools.product(args.rows, args.features, args.warps,
                                                      args.dots) if s != DEFAULT]
  rows, reference = [], None
  for s in settings:
    row = run_child(args, s)
    got = row.pop('fingerprint', None)
    if got is not None:
      reference = reference or (got if s == DEFAULT else None)
      row['rel_diff'] = None if reference is None else fingerprint_difference(got, reference)
    rows.append(row)
    print(json.dumps(row), flush=True)
    save_rows(rows, args.out)
  timed = sorted((r for r in rows if 'ms' in r), key=lambda r: r['ms'])
  key = lambda r: (r['rows'], r['features'], r['warps'], r['dots'])
  chosen = [DEFAULT] + [key(r) for r in timed if key(r) != DEFAULT][:args.top]
  for s, n in itertools.product(chosen, [] if args.tiny else args.layer_lengths):
    rows.append(run_child(args, s, n))
    print(json.dumps(rows[-1]), flush=True)
    save_rows(rows, args.out)
  return 0


if __name__ == '__main__':
  sys.exit(main())
