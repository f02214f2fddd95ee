"""What `Loop.run` costs per step beyond the jitted train step itself.

Trains the same model on the same data twice: with `plait.supervised.Loop` (no output_dir,
so no checkpoint or file I/O; it syncs on every step's loss to check it and log it), and
with a bare loop over the same jitted `make_train_step` that never waits (dispatches every
step, blocks once at the end). Small models on a GPU show the Loop's host work per step
(reading the next batch, logging) unless it overlaps the device's work.

  python benchmarks/loop_overhead_gpu.py                 # duplication-task ReformerLM, GPU
  python benchmarks/loop_overhead_gpu.py --tiny --steps 20   # CPU smoke test

Prints one Markdown row (`--json` writes it): ms/step of each loop and their ratio.
`--model transformer` times a mid-size TransformerLM instead (longer steps, same host work).
"""
import argparse
import functools
import json
import time

import jax

import plait.layers as tl
from plait import shapes
from plait.data.duplication import duplication_inputs
from plait.layers.attention.lsh import LSHSelfAttention
from plait.models.reformer import ReformerLM
from plait.models.transformer import TransformerLM
from plait.supervised import optimizers, schedules, train_step as step_lib
from plait.supervised.loop_settings import LoopSettings
from plait.supervised.tasks import TrainTask
from plait.supervised.training import Loop


def duplication_model(length, tiny):
  """The 1-layer LSH-4 ReformerLM of benchmarks/duplication_table.py (RESULTS section 5)."""
  d, heads, chunk = (32, 2, 8) if tiny else (256, 4, 64)
  attention = functools.partial(LSHSelfAttention, causal=True, n_hashes=4,
                                n_buckets=2 * length // chunk, chunk_len=chunk)
  return ReformerLM(vocab_size=128, d_model=d, d_ff=2 * d, n_layers=1, n_heads=heads,
                    max_len=length, positional='learned', attention_type=attention)


def transformer_model(length, tiny):
  """A mid-size TransformerLM (d_model 512, 8 layers; ~25M parameters) on the same data."""
  d, layers = (32, 1) if tiny else (512, 8)
  return TransformerLM(vocab_size=128, d_model=d, d_ff=4 * d, n_layers=layers,
                       n_heads=8 if not tiny else 2, max_len=length)


MODELS = {'duplication': ('duplication ReformerLM (LSH-4)', duplication_model),
          'transformer': ('TransformerLM d512 x 8', transformer_model)}


def task(length, batch):
  return TrainTask(duplication_inputs(length, 128, batch, seed=0), tl.CrossEntropyLoss(),
                   optimizers.Adam, schedules.cosine(1e-3, 100_000, 100))


def time_loop(model, length, batch, steps, warmup):
  loop = Loop(model, task(length, batch),
              settings=LoopSettings(checkpoint_every=None, progress='none'))
  loop.run(warmup)
  start = time.perf_counter()
  loop.run(steps)
  jax.block_until_ready(loop.weights)
  return (time.perf_counter() - start) / steps


def time_bare(model, length, batch, steps, warmup):
  """The same step, jitted the same way, dispatched without waiting."""
  t = task(length, batch)
  batches = t.stream
  first = batches.peek()
  weights, state = model.init(shapes.signature(first[0]), jax.random.key(0))
  opt_state = t.optimizer.init(weights)
  donate = (0, 1, 2) if jax.default_backend() != 'cpu' else ()
  step = jax.jit(step_lib.make_train_step(model, t.loss_layer, t.optimizer),
                 donate_argnums=donate)
  rng = jax.random.key(1)

  def run(n, start_at):
    nonlocal weights, state, opt_state
    for i in range(start_at, start_at + n):
      batch = tuple(jax.numpy.asarray(x) for x in next(batches))
      weights, state, opt_state, _, _ = step(weights, state, opt_state, batch,
                                             jax.random.fold_in(rng, i))
    jax.block_until_ready(weights)

  run(warmup, 1)
  start = time.perf_counter()
  run(steps, warmup + 1)
  return (time.perf_counter() - start) / steps


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--length', type=int, default=1024)
  p.add_argument('--batch', type=int, default=16)
  p.add_argument('--steps', type=int, default=2000)
  p.add_argument('--warmup', type=int, default=20)
  p.add_argument('--model', choices=sorted(MODELS), default='duplication')
  p.add_argument('--tiny', action='store_true', help='CPU smoke sizes (numbers meaningless)')
  p.add_argument('--json', default=None)
  args = p.parse_args()
  length = 64 if args.tiny else args.length
  name, build = MODELS[args.model]
  model = build(length, args.tiny)
  bare = time_bare(model, length, args.batch, args.steps, args.warmup)
  looped = time_loop(model, length, args.batch, args.steps, args.warmup)
  row = {'device': jax.devices()[0].device_kind, 'model': name,
         'length': length, 'batch': args.batch, 'steps': args.steps,
         'bare_ms': bare * 1e3, 'loop_ms': looped * 1e3, 'loop_over_bare': looped / bare}
  print('| device | model | length | batch | bare loop ms/step | Loop ms/step | Loop / bare |')
  print('| --- | --- | --- | --- | --- | --- | --- |')
  print(f"| {row['device']} | {row['model']} | {length} | {args.batch} | {row['bare_ms']:.2f} | "
        f"{row['loop_ms']:.2f} | {row['loop_over_bare']:.2f} |")
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(row, f, indent=1)


if __name__ == '__main__':
  main()
