"""Session 49 (CPU): is plait's ListOps test split a harder draw than its validation split?

Two shallow predictors fitted on 40,000 training examples (the outer operator's majority
answer; the majority answer given the outer operator and its direct digit arguments' min and
max) are scored on the official 2,000-example splits (examples 0..1,999 of each stream) and on
examples 0..19,999 of the same validation and test streams; then each rule's cross-entropy
on validation (its training counts + 0.5 as probabilities), to set beside a model's
validation loss.
  python benchmarks/results/h200_session49/listops_split_check.py
"""
import collections
import multiprocessing

import numpy as np

from plait.data.lra.listops import ListOpsExamples, SPLIT_SIZES, MIN_LENGTH, MAX_LENGTH

N_FIT, N_STREAM = 40_000, 20_000


def features(tokens):
  """(outer operator 0-3, min and max of its direct digit arguments, or -1 when none)."""
  depth, digits = 0, []
  for t in tokens[1:]:
    if t == 0:
      break
    if 11 <= t <= 14:
      depth += 1
    elif t == 15:
      depth -= 1
    elif depth == 0:
      digits.append(int(t) - 1)
  return int(tokens[0]) - 11, min(digits, default=-1), max(digits, default=-1)


def _one(args):
  split, i = args
  tokens, label = ListOpsExamples(split, 0, max(i + 1, SPLIT_SIZES[split]), MIN_LENGTH,
                                  MAX_LENGTH).generate(i)
  return features(tokens), int(label)


def examples(split, n, pool):
  return pool.map(_one, [(split, i) for i in range(n)], chunksize=256)


def fit(train, key):
  by = collections.defaultdict(collections.Counter)
  for f, y in train:
    by[key(f)][y] += 1
  return {k: c.most_common(1)[0][0] for k, c in by.items()}


def counts(train, key):
  """{key: answer probabilities}: the training counts + 0.5, normalized."""
  by = collections.defaultdict(lambda: np.full(10, 0.5))
  for f, y in train:
    by[key(f)][y] += 1
  return {k: c / c.sum() for k, c in by.items()}


def main():
  with multiprocessing.Pool() as pool:
    train = examples('train', N_FIT, pool)
    streams = {s: examples(s, N_STREAM, pool) for s in ('validation', 'test')}
  predictors = {'outer operator': lambda f: f[0], 'operator + direct digits min/max': lambda f: f}
  print('| predictor | validation 2,000 | test 2,000 | validation 20,000 | test 20,000 |')
  print('| --- | --- | --- | --- | --- |')
  for name, key in predictors.items():
    table = fit(train, key)
    op_table = fit(train, lambda f: f[0])
    cells = []
    for n in (2_000, N_STREAM):
      for s in ('validation', 'test'):
        right = [table.get(key(f), op_table[f[0]]) == y for f, y in streams[s][:n]]
        cells.append(f'{100 * np.mean(right):.2f}')
    print(f'| {name} | ' + ' | '.join([cells[0], cells[1], cells[2], cells[3]]) + ' |')
  for name, key in predictors.items():
    probs = counts(train, key)
    op_probs = counts(train, lambda f: f[0])
    for n in (2_000, N_STREAM):
      loss = np.mean([-np.log(probs.get(key(f), op_probs[f[0]])[y])
                      for f, y in streams['validation'][:n]])
      print(f'{name}: cross-entropy on validation {n:,}: {loss:.4f}')
  for s in ('validation', 'test'):
    for n in (2_000, N_STREAM):
      labels = np.bincount([y for _, y in streams[s][:n]], minlength=10) / n
      print(f'{s} {n}: labels 0 and 9 {100 * (labels[0] + labels[9]):.1f} %, majority '
            f'{100 * labels.max():.2f} %')


if __name__ == '__main__':
  main()
