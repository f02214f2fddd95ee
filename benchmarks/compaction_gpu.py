"""Exact token compaction (`compact_to`) on LRA Pathfinder: step time and agreement.

  python benchmarks/compaction_gpu.py            # one JSON line per (model, way), then a table

The shipped Pathfinder configs' encoders that compact (Transformer, Performer, Reformer;
batch 512, real images from the validation split) in two ways: `full` (1,024 positions,
black pixels masked) and `compact` (the config's compact_to = 256, as it runs). Timed: fwd+bwd
of the mean cross-entropy in bf16 (weights cast, as LoopSettings.compute_dtype does), train
mode. Checked: the largest logit difference of `compact` against `full` in eval mode (no
dropout, fixed hash rotations), in float32 and in bf16.
"""
import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from bench_rows import median_ms  # pylint: disable=g-bad-import-order
from plait import layers as tl
from plait.data.lra.pathfinder import PathfinderExamples
from plait.layers.metrics import cross_entropy
from shipped import shipped_model  # pylint: disable=g-bad-import-order

MODELS = ('transformer', 'performer', 'reformer')   # the kinds whose configs bind compact_to
WAYS = ('full', 'compact')


def build(name, way, mode):
  return shipped_model(f'lra_pathfinder_{name}', mode,
                       **({'compact_to': None} if way == 'full' else {}))


def images(batch, resolution=32):
  examples = PathfinderExamples('validation', 0, batch, resolution)
  pixels = np.stack([examples[i][0] for i in range(batch)]).astype(np.int32)
  return pixels, np.arange(batch, dtype=np.int32) % 2


def measure(name, tokens, targets, reps):
  weights, state = build(name, 'full', 'train').init(tl.signature(tokens), rng=jax.random.key(0))
  rng = jax.random.key(1)
  bf16 = jax.tree_util.tree_map(lambda w: w.astype(jnp.bfloat16), weights)
  rows = []
  for way in WAYS:
    model = build(name, way, 'train')

    def step(w, tokens, model=model):   # tokens an argument: no constant folding of the sort
      def loss(w):
        logits, _ = model.pure_fn(tokens, w, state, rng)
        return jnp.mean(cross_entropy(logits.astype(jnp.float32), targets))
      return jax.value_and_grad(loss)(w)
    ms = median_ms(step, bf16, jnp.asarray(tokens), reps=reps)
    rows.append(dict(model=name, way=way, batch=int(tokens.shape[0]), ms=round(ms, 3)))
  eval_logits = {}
  for way in WAYS:
    model = build(name, way, 'eval')
    for dtype in (jnp.float32, jnp.bfloat16):
      w = jax.tree_util.tree_map(lambda a, dtype=dtype: a.astype(dtype), weights)
      run = jax.jit(lambda t, w, model=model: model.pure_fn(t, w, state, None)[0])
      eval_logits[way, jnp.dtype(dtype).name] = np.asarray(run(tokens, w), np.float32)
  for row in rows:
    if row['way'] != 'full':
      for dtype in ('float32', 'bfloat16'):
        diff = np.abs(eval_logits['compact', dtype] - eval_logits['full', dtype])
        row[f'max_logit_diff_{dtype}'] = float(diff.max())
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=512)
  parser.add_argument('--reps', type=int, default=20)
  parser.add_argument('--models', nargs='+', default=list(MODELS), choices=MODELS)
  args = parser.parse_args()
  tokens, targets = images(args.batch)
  lit = np.count_nonzero(tokens, axis=1)
  print(json.dumps(dict(device=str(jax.devices()[0].device_kind), lit_mean=float(lit.mean()),
                        lit_max=int(lit.max()))), flush=True)
  rows = []
  for name in args.models:
    for row in measure(name, tokens, targets, args.reps):
      print(json.dumps(row), flush=True)
      rows.append(row)
  print('\n| model | way | fwd+bwd ms | vs full | max logit diff f32 / bf16 |\n'
        '| --- | --- | --- | --- | --- |')
  for row in rows:
    full = next(r['ms'] for r in rows if r['model'] == row['model'] and r['way'] == 'full')
    diff = (f"{row['max_logit_diff_float32']:.1e} / {row['max_logit_diff_bfloat16']:.1e}"
            if 'max_logit_diff_float32' in row else '')
    print(f"| {row['model']} | {row['way']} | {row['ms']:.2f} | {full / row['ms']:.2f}x | {diff} |")


if __name__ == '__main__':
  main()
