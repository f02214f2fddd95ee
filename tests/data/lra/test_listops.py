"""LRA ListOps: labels checked by an independent evaluator, lengths, shape of the trees, seeds."""
import random
import statistics

import numpy as np
import pytest

from plait.data.lra import listops
from plait.data.lra import lra_listops_inputs
from tests.data.lra.resume import assert_resumes_exactly

_OPERATOR_IDS = {11: min, 12: max, 13: lambda v: int(statistics.median(v)),
                 14: lambda v: sum(v) % 10}


def evaluate(ids):
  """(value, depth, argument counts) of a token-id expression, by a plain recursive parser."""
  ids = [int(i) for i in ids if i]
  counts = []

  def node(pos, depth):
    token = ids[pos]
    if 1 <= token <= 10:
      return token - 1, pos + 1, depth
    assert token in _OPERATOR_IDS, f'unexpected token {token} at {pos}'
    values, pos, deepest = [], pos + 1, depth
    while ids[pos] != 15:
      value, pos, sub_depth = node(pos, depth + 1)
      values.append(value)
      deepest = max(deepest, sub_depth)
    counts.append(len(values))
    return _OPERATOR_IDS[token](values), pos + 1, deepest

  value, end, depth = node(0, 1)
  assert end == len(ids), f'{len(ids) - end} tokens after the expression'
  return value, depth, counts


def reference_length(rng, min_length, max_length):
  """Token count of a tree kept by LRA's recipe, grown depth-first with Python's random."""
  def size(depth):
    if depth == 1 or (depth < 10 and rng.random() < 0.25):
      return 2 + sum(size(depth + 1) for _ in range(rng.randint(2, 10)))
    return 1
  while True:
    n = size(1)
    if min_length < n < max_length:
      return n


def test_labels_match_an_independent_evaluator_and_trees_follow_the_recipe():
  examples = lra_listops_inputs(split='train').examples
  for i in range(40):
    tokens, label, weight = examples[i]
    value, depth, counts = evaluate(tokens)
    assert int(label) == value
    assert depth <= listops.MAX_DEPTH
    assert min(counts) >= 2 and max(counts) <= listops.MAX_ARGS
    assert float(weight) == 1.0


def test_lengths_are_strictly_between_the_bounds_and_padding_is_zero():
  examples = lra_listops_inputs(split='validation').examples
  for i in range(40):
    tokens = examples[i][0]
    assert tokens.shape == (2000,) and tokens.dtype == np.int32
    n = int((tokens > 0).sum())
    assert 500 < n < 2000
    assert (tokens[:n] > 0).all() and (tokens[n:] == 0).all()
    assert tokens.max() < listops.VOCAB_SIZE


def test_small_bounds_give_valid_short_expressions():
  examples = lra_listops_inputs(split='test', min_length=10, max_length=40).examples
  for i in range(100):
    tokens, label, _ = examples[i]
    assert tokens.shape == (40,)
    assert 10 < int((tokens > 0).sum()) < 40
    assert evaluate(tokens)[0] == int(label)


def test_length_distribution_matches_a_depth_first_reference_generator():
  # Same recipe, independent code: the mean kept length must agree within sampling error.
  ours = [int((lra_listops_inputs(min_length=10, max_length=60).examples[i][0] > 0).sum())
          for i in range(1500)]
  rng = random.Random(0)
  theirs = [reference_length(rng, 10, 60) for _ in range(1500)]
  error = np.sqrt(np.var(ours) / len(ours) + np.var(theirs) / len(theirs))
  assert abs(np.mean(ours) - np.mean(theirs)) < 4 * error, (np.mean(ours), np.mean(theirs))


def test_label_distribution_is_sane():
  examples = lra_listops_inputs(min_length=10, max_length=200).examples
  labels = np.array([int(examples[i][1]) for i in range(600)])
  counts = np.bincount(labels, minlength=10)
  assert counts.min() > 0 and counts.max() < 0.4 * len(labels), counts


def test_same_seed_same_batches_other_seed_other_batches():
  first = next(lra_listops_inputs(batch_size=2, seed=3)())
  again = next(lra_listops_inputs(batch_size=2, seed=3)())
  other = next(lra_listops_inputs(batch_size=2, seed=4)())
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(first[0], other[0])


def test_splits_are_disjoint():
  seen = {}
  for split in ('train', 'validation', 'test'):
    examples = lra_listops_inputs(split=split, min_length=30, max_length=200).examples
    for i in range(100):
      key = examples[i][0].tobytes()
      assert key not in seen, f'{split}[{i}] equals {seen[key]}'
      seen[key] = (split, i)


def test_batches_have_the_agreed_shapes_and_dtypes():
  make = lra_listops_inputs(batch_size=3)
  inputs, targets, weights = next(make())
  assert inputs.shape == (3, 2000) and inputs.dtype == np.int32
  assert targets.shape == (3,) and targets.dtype == np.int32
  assert weights.shape == (3,) and weights.dtype == np.float32
  assert (weights == 1).all()
  assert (make.vocab_size, make.n_classes, make.max_length) == (16, 10, 2000)


def test_a_restored_pipeline_continues_exactly():
  make = lra_listops_inputs(batch_size=2, min_length=10, max_length=50, n_examples=5)
  assert_resumes_exactly(make, n_before=4, n_after=3)  # into the second epoch


def test_eval_splits_repeat_in_a_fixed_order_and_train_reshuffles():
  make = lra_listops_inputs(split='validation', batch_size=4, min_length=10, max_length=50,
                            n_examples=4)
  stream = make()
  np.testing.assert_array_equal(next(stream)[0], next(stream)[0])
  examples = make.examples
  np.testing.assert_array_equal(next(make())[0], np.stack([examples[i][0] for i in range(4)]))
  train = lra_listops_inputs(batch_size=8, min_length=10, max_length=50, n_examples=8)()
  epoch_1, epoch_2 = next(train)[0], next(train)[0]
  assert not np.array_equal(epoch_1, epoch_2)
  assert sorted(map(bytes, epoch_1)) == sorted(map(bytes, epoch_2))


@pytest.mark.parametrize('kwargs, message', [
    ({'split': 'eval'}, 'split must be one of'),
    ({'batch_size': 0}, 'batch_size'),
    ({'seed': -1}, 'seed'),
    ({'min_length': 100, 'max_length': 100}, 'min_length'),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
  with pytest.raises(ValueError, match=message):
    lra_listops_inputs(**kwargs)


def test_text_shows_the_expression():
  assert listops.listops_text([12, 3, 10, 15, 0, 0]) == '[MAX 2 9 ]'


def test_examples_made_in_parallel_equal_those_made_lazily():
  lazy = lra_listops_inputs(split='test', min_length=10, max_length=60, n_examples=300).examples
  filled = lra_listops_inputs(split='test', min_length=10, max_length=60, n_examples=300,
                              workers=2).examples
  for i in (0, 1, 255, 256, 299):
    for a, b in zip(lazy[i], filled[i]):
      np.testing.assert_array_equal(a, b)
      assert a.dtype == b.dtype


def test_a_longer_test_stream_starts_with_the_split():
  """lra.py --test_examples scores examples 0..N-1 of the test stream as a tighter estimate of
  the split's accuracy: the split is its start, in the same order; the rest are new examples."""
  kwargs = {'split': 'test', 'batch_size': 4, 'min_length': 10, 'max_length': 60}
  split, stream = lra_listops_inputs(n_examples=8, **kwargs)(), lra_listops_inputs(
      n_examples=16, **kwargs)()
  starts = [next(split) for _ in range(2)]
  for start in starts:
    for a, b in zip(start, next(stream)):
      np.testing.assert_array_equal(a, b)
  seen = {bytes(x) for batch in starts for x in batch[0]}
  assert not seen & {bytes(x) for x in next(stream)[0]}
