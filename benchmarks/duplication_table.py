"""Reformer paper Table 2: train on the duplication task with one attention, evaluate with others.

Task (plait.data.duplication_inputs): `0 w 0 w` with w random symbols; accuracy counts only
the second copy of w. Model: a 1-layer ReformerLM with learned positions and shared-QK
attention. Three models are trained: 'full' (exact causal shared-QK attention, i.e. LSH with
one bucket and one chunk, so its weights fit the LSH layers too), 'lsh1' and 'lsh4' (LSH with
1 or 4 hashes). Each is then rebuilt in eval mode with every attention of the table (full,
LSH-8/4/2/1), reusing the trained weights (no LSH setting changes the weights' shapes), and
scored on fresh sequences (another data seed).

  # CPU, tiny (minutes):
  python benchmarks/duplication_table.py --length 64 --d_model 64 --d_ff 128 --n_heads 2 \
      --chunk_len 8 --steps 600
  # GPU, the paper's size (length 1024, d_model 256, 4 heads):
  python benchmarks/duplication_table.py --steps 20000
  # ... or one process per trained model side by side on one GPU, then one table:
  python benchmarks/duplication_table.py --train lsh4 --json lsh4.json &  # (and full, lsh1)
  python benchmarks/duplication_table.py --table_from full.json lsh1.json lsh4.json

Prints a Markdown table with the paper's numbers beside ours (and --json writes them).
"""
import argparse
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from plait.data.duplication import duplication_inputs
from plait.layers.attention.lsh import LSHSelfAttention
from plait.models.reformer import ReformerLM
from plait.shapes import ShapeDtype

TRAIN_KINDS = ('full', 'lsh1', 'lsh4')
EVAL_KINDS = ('full', 'lsh8', 'lsh4', 'lsh2', 'lsh1')
# Kitaev et al. 2020, Table 2 (accuracy % on the second half, length 1024). 0.8% is chance
# (1/127): LSH-trained models fail under full attention.
PAPER = {
    'full': {'full': 100.0, 'lsh8': 94.8, 'lsh4': 92.5, 'lsh2': 76.9, 'lsh1': 52.5},
    'lsh1': {'full': 0.8, 'lsh8': 99.9, 'lsh4': 99.7, 'lsh2': 97.4, 'lsh1': 77.9},
    'lsh4': {'full': 0.8, 'lsh8': 100.0, 'lsh4': 99.9, 'lsh2': 99.4, 'lsh1': 91.9},
}


def attention(kind, length, chunk_len, n_buckets):
  """A causal shared-QK attention constructor: 'full' or 'lshN' (N hashes)."""
  if kind == 'full':  # One bucket, one chunk: every earlier position, exactly.
    return functools.partial(LSHSelfAttention, causal=True, n_hashes=1, n_buckets=1,
                             chunk_len=length)
  if not kind.startswith('lsh'):
    raise ValueError(f"attention kind must be 'full' or 'lshN', got {kind!r}.")
  return functools.partial(LSHSelfAttention, causal=True, n_hashes=int(kind[3:]),
                           n_buckets=n_buckets, chunk_len=chunk_len)


def model(kind, mode, cfg):
  """The 1-layer ReformerLM of the task with attention `kind` (see `attention`)."""
  return ReformerLM(vocab_size=cfg['vocab_size'], d_model=cfg['d_model'], d_ff=cfg['d_ff'],
                    n_layers=1, n_heads=cfg['n_heads'], max_len=cfg['length'], dropout=0.0,
                    attention_type=attention(kind, cfg['length'], cfg['chunk_len'],
                                             cfg['n_buckets']),
                    positional='learned', mode=mode)


def _weighted_loss_and_accuracy(logits, targets, weights):
  logp = jax.nn.log_softmax(logits.astype(jnp.float32))
  nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  total = jnp.sum(weights)
  return jnp.sum(nll * weights) / total, jnp.sum(correct * weights) / total


def train(kind, cfg, steps, seed=0, log_every=0, max_seconds=None):
  """Trains the `kind` model for `steps` Adam steps (or until `max_seconds` have passed).

  Returns (weights, [(step, loss, acc)], steps done).
  """
  net = model(kind, 'train', cfg)
  data = duplication_inputs(cfg['length'], cfg['vocab_size'], cfg['batch_size'], seed=seed)()
  sig = ShapeDtype((cfg['batch_size'], cfg['length']), jnp.int32)
  weights, state = net.init(sig, rng=jax.random.key(seed))
  warmup = max(1, min(100, steps // 10))
  if cfg.get('schedule', 'constant') == 'cosine':  # Decays to 0 at `steps`.
    schedule = optax.warmup_cosine_decay_schedule(0.0, cfg['lr'], warmup, max(steps, warmup + 1))
  else:
    schedule = optax.warmup_constant_schedule(0.0, cfg['lr'], warmup)
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
  opt_state = optimizer.init(weights)

  def loss_fn(w, batch, rng):
    inputs, targets, mask = batch
    logits, _ = net.pure_fn(inputs, w, state, rng)
    return _weighted_loss_and_accuracy(logits, targets, mask)

  @jax.jit
  def step(w, opt_state, batch, rng):
    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(w, batch, rng)
    updates, opt_state = optimizer.update(grads, opt_state, w)
    return optax.apply_updates(w, updates), opt_state, loss, acc

  history, rng, start, i = [], jax.random.key(seed + 1), time.time(), 0
  for i in range(1, steps + 1):
    rng, sub = jax.random.split(rng)
    weights, opt_state, loss, acc = step(weights, opt_state, next(data), sub)
    out_of_time = max_seconds is not None and i % 50 == 0 and time.time() - start > max_seconds
    if log_every and (i % log_every == 0 or i == steps or out_of_time):
      history.append((i, float(loss), float(acc)))
      print(f'  train {kind} step {i}: loss {float(loss):.3f} acc {float(acc):.3f}', flush=True)
    if out_of_time:
      break
  return weights, history, i


def evaluate(weights, kind, cfg, n_batches, seed=12345):
  """Accuracy on the second half of fresh sequences with eval-mode attention `kind`."""
  net = model(kind, 'eval', cfg)
  sig = ShapeDtype((cfg['batch_size'], cfg['length']), jnp.int32)
  _, state = net.init(sig)
  data = duplication_inputs(cfg['length'], cfg['vocab_size'], cfg['batch_size'], seed=seed)()

  @jax.jit
  def accuracy(w, batch):
    inputs, targets, mask = batch
    logits, _ = net.pure_fn(inputs, w, state)
    return _weighted_loss_and_accuracy(logits, targets, mask)[1]

  return float(np.mean([accuracy(weights, next(data)) for _ in range(n_batches)]))


def table(results, cfg):
  """Markdown: one row per trained model, each cell 'ours (paper)' in %."""
  head = '| trained \\ evaluated | ' + ' | '.join(_label(k) for k in EVAL_KINDS) + ' |'
  rows = [head, '|' + '---|' * (len(EVAL_KINDS) + 1)]
  for t, evals in results.items():
    cells = []
    for e in EVAL_KINDS:
      paper = PAPER.get(t, {}).get(e)
      cells.append(f'{100 * evals[e]:.1f} ({paper:.1f})' if paper is not None
                   else f'{100 * evals[e]:.1f}')
    rows.append(f'| {_label(t)} | ' + ' | '.join(cells) + ' |')
  chance = 100.0 / (cfg['vocab_size'] - 1)
  rows.append(f'\nAccuracy % on the second copy; ours (paper, length 1024). Chance = '
              f'{chance:.1f}%. Length {cfg["length"]}, d_model {cfg["d_model"]}, '
              f'{cfg["n_heads"]} heads, chunk_len {cfg["chunk_len"]}, '
              f'{cfg["n_buckets"]} buckets.')
  return '\n'.join(rows)


def merged_table(paths):
  """The table of several --json files' rows (in the order given); their configs must agree."""
  results, cfg = {}, None
  for path in paths:
    with open(path) as f:
      run = json.load(f)
    if cfg is not None and run['config'] != cfg:
      raise ValueError(f'{path}: config {run["config"]} differs from {paths[0]}: {cfg}.')
    cfg = run['config']
    results.update(run['results'])
  return table(results, cfg)


def _label(kind):
  return 'full' if kind == 'full' else f'LSH-{kind[3:]}'


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--length', type=int, default=1024)
  p.add_argument('--vocab_size', type=int, default=128)
  p.add_argument('--d_model', type=int, default=256)
  p.add_argument('--d_ff', type=int, default=512)
  p.add_argument('--n_heads', type=int, default=4)
  p.add_argument('--chunk_len', type=int, default=64)
  p.add_argument('--n_buckets', type=int, default=None,
                 help='default 2 * length / chunk_len (as in the Reformer configs)')
  p.add_argument('--batch_size', type=int, default=16)
  p.add_argument('--lr', type=float, default=1e-3)
  p.add_argument('--schedule', choices=['constant', 'cosine'], default='constant',
                 help='learning rate after warm-up: constant, or cosine decay to 0 at --steps')
  p.add_argument('--steps', type=int, default=20000)
  p.add_argument('--seed', type=int, default=0,
                 help='weights, training data and hash seed (evaluation data is fixed)')
  p.add_argument('--eval_batches', type=int, default=8)
  p.add_argument('--max_seconds', type=float, default=None,
                 help='stop training each model after this long (checked every 50 steps)')
  p.add_argument('--train', nargs='+', default=list(TRAIN_KINDS))
  p.add_argument('--log_every', type=int, default=0)
  p.add_argument('--json', default=None, help='also write the results here')
  p.add_argument('--table_from', nargs='+', default=None, metavar='JSON',
                 help='train nothing: print one table of the rows in these --json files '
                      '(e.g. one process per trained model, run side by side)')
  args = p.parse_args()
  if args.table_from:
    print(merged_table(args.table_from))
    return
  cfg = {k: getattr(args, k) for k in ('length', 'vocab_size', 'd_model', 'd_ff', 'n_heads',
                                       'chunk_len', 'batch_size', 'lr', 'schedule')}
  cfg['n_buckets'] = args.n_buckets or max(2, 2 * args.length // args.chunk_len)
  print(f'# {jax.devices()[0].device_kind}; {cfg}; {args.steps} steps', flush=True)
  results, timings, steps_done = {}, {}, {}
  for kind in args.train:
    start = time.time()
    weights, _, steps_done[kind] = train(kind, cfg, args.steps, seed=args.seed,
                                         log_every=args.log_every, max_seconds=args.max_seconds)
    results[kind] = {e: evaluate(weights, e, cfg, args.eval_batches) for e in EVAL_KINDS}
    timings[kind] = time.time() - start
    print(f'# trained {kind} for {steps_done[kind]} steps in {timings[kind]:.0f}s: '
          f'{results[kind]}', flush=True)
  print(table(results, cfg))
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'config': cfg, 'seed': args.seed, 'steps': steps_done, 'results': results,
                 'seconds': timings, 'device': jax.devices()[0].device_kind}, f, indent=1)


if __name__ == '__main__':
  main()
