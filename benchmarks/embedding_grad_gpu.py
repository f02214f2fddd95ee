"""The embedding table's gradient on the GPU: plait's float32 sum vs jnp.take's own vs one-hot.

  python benchmarks/embedding_grad_gpu.py    # one JSON line per (shape, way), then a table

fwd+bwd of sum(table[ids] * w) with a bf16 table (mixed precision), for the token counts and
vocabularies of plait's configs, ids uniform except `pathfinder_images`: the pixels of real
Pathfinder images (84 % of them 0, so one row takes most additions; 64 images repeated).
`plait` is `layers.core.embedding_rows` (scatter-add in float32, one rounding), `take`
jnp.take's gradient (scatter-add in bf16), `one_hot` the (N, V) one-hot matrix times the row
gradients. Also the largest error of each against the float64 sum, relative to the largest
gradient entry.
"""
import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from bench_rows import median_ms  # pylint: disable=g-bad-import-order
from plait.layers.core import embedding_rows

# (name, vocab, tokens, d)
SHAPES = (('pathfinder', 256, 512 * 1024, 32), ('pathfinder_images', 256, 512 * 1024, 32),
          ('listops', 20, 32 * 2000, 512),
          ('lra_text_4k', 257, 32 * 4096, 256), ('char_lm', 256, 16 * 2048, 512),
          ('lm_32k', 32000, 16 * 2048, 768))
WAYS = {
    'plait': embedding_rows,
    'take': lambda t, i: jnp.take(t, i, axis=0),
    'one_hot': lambda t, i: jnp.dot(jax.nn.one_hot(i, t.shape[0], dtype=t.dtype), t),
}


def pathfinder_pixels(n):
  """n pixel values of Pathfinder 32x32 images (64 images, repeated)."""
  from plait.data.lra import pathfinder  # pylint: disable=import-outside-toplevel
  examples = pathfinder.PathfinderExamples('train', 0, 64, 32)
  pixels = np.concatenate([examples.generate(i)[0] for i in range(64)])
  return np.resize(pixels, n)


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--reps', type=int, default=10)
  p.add_argument('--scale', type=float, default=1.0, help='token counts times this (CPU: 0.01)')
  args = p.parse_args(argv)
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  rows = []
  for name, vocab, tokens, d in SHAPES:
    tokens = max(1, int(tokens * args.scale))
    rng = np.random.default_rng(0)
    ids = jnp.asarray(pathfinder_pixels(tokens) if name == 'pathfinder_images'
                      else rng.integers(0, vocab, tokens), jnp.int32)
    table = jnp.asarray(rng.standard_normal((vocab, d)), jnp.bfloat16)
    w = jnp.asarray(rng.standard_normal((tokens, d)), jnp.bfloat16)
    want = np.zeros((vocab, d))
    np.add.at(want, np.asarray(ids), np.asarray(w, np.float64))
    for way, rows_of in WAYS.items():
      grad = jax.jit(jax.grad(lambda t, i, w, f=rows_of: jnp.sum(
          f(t, i).astype(jnp.float32) * w.astype(jnp.float32))))
      row = dict(shape=name, vocab=vocab, tokens=tokens, d=d, way=way)
      try:
        row['ms'] = median_ms(grad, table, ids, w, reps=args.reps)
        got = np.asarray(grad(table, ids, w), np.float64)
        row['max_rel_error'] = float(np.abs(got - want).max() / np.abs(want).max())
      except Exception as e:  # pylint: disable=broad-except
        row['error'] = f'{type(e).__name__}: {str(e).splitlines()[0][:200]}'
      print(json.dumps(row), flush=True)
      rows.append(row)
  print('\n| shape | vocab | tokens | d | ' + ' | '.join(f'{w} ms (error)' for w in WAYS) + ' |')
  print('| --- ' * (4 + len(WAYS)) + '|')
  for name, vocab, tokens, d in SHAPES:
    cells = []
    for way in WAYS:
      r = next(r for r in rows if r['shape'] == name and r['way'] == way)
      cells.append(r.get('error', '')[:30] or f"{r['ms']:.3f} ({r['max_rel_error']:.1e})")
    print(f"| {name} | {vocab} | {r['tokens']} | {d} | " + ' | '.join(cells) + ' |')


if __name__ == '__main__':
  main()
