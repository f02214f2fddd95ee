"""Length-bucketed LRA training batches (`bucket_lengths`): each batch padded to the first bucket
that holds its examples, every example kept whole and read once per epoch, resumable, errors."""
import numpy as np
import pytest

from plait.data.lra import lra_listops_inputs
from plait.data.lra.common import strip_padding
from tests.data.lra.resume import assert_resumes_exactly

SMALL = dict(batch_size=4, max_length=100, min_length=20, n_examples=64)
BUCKETS = (40, 60, 100)


def bucketed(**kwargs):
  return lra_listops_inputs(**{**SMALL, 'bucket_lengths': BUCKETS, **kwargs})


def real(tokens):
  return tuple(int(t) for t in strip_padding((np.asarray(tokens),))[0])


def test_each_batch_is_padded_to_the_first_bucket_holding_its_examples():
  stream = bucketed()()
  batches = [next(stream) for _ in range(30)]
  assert {b[0].shape[1] for b in batches} == set(BUCKETS)   # every bucket used, no other shape
  for inputs, targets, weights in batches:
    assert inputs.shape[0] == targets.shape[0] == weights.shape[0] == 4
    lengths = [len(real(row)) for row in inputs]
    assert inputs.shape[1] == next(b for b in BUCKETS if max(lengths) <= b)
    assert min(lengths) > ([0] + list(BUCKETS))[BUCKETS.index(inputs.shape[1])]  # same bucket
    np.testing.assert_array_equal(weights, 1.0)


def test_every_example_is_kept_whole_with_its_label_and_read_once_per_epoch():
  """Rows are the shuffled examples cut only at their padding, labels with them; after 12
  batches (48 rows, from at most 57 of the epoch's 64 examples read: the buckets hold at most
  3 x 3 waiting) every row is a distinct example."""
  plain = lra_listops_inputs(**SMALL)
  by_tokens = {real(t): int(y) for t, y, _ in (plain.examples[i] for i in range(64))}
  assert len(by_tokens) == 64   # distinct expressions, so a row names its example
  stream = bucketed()()
  rows = []
  for _ in range(12):
    inputs, targets, _ = next(stream)
    for row, target in zip(inputs, targets):
      assert by_tokens[real(row)] == int(target)
      rows.append(real(row))
  assert len(set(rows)) == len(rows) == 48


def test_same_seed_same_batches_and_a_restored_pipeline_continues_exactly():
  first, second = bucketed()(), bucketed()()
  for _ in range(10):
    np.testing.assert_array_equal(next(first)[0], next(second)[0])
  shuffled = next(bucketed(seed=1)())[0]
  assert not np.array_equal(shuffled, next(bucketed()())[0])   # the seed orders the examples
  # the state holds examples waiting in partly filled buckets, and the epoch's position
  assert_resumes_exactly(bucketed(), 7, 20)
  assert_resumes_exactly(bucketed(), 17, 10)   # across the epoch boundary (64 examples)


def test_without_buckets_batches_keep_the_full_length():
  inputs, _, _ = next(lra_listops_inputs(**SMALL)())
  assert inputs.shape == (4, 100)
  assert lra_listops_inputs(**SMALL).bucket_lengths is None
  assert 'buckets [40, 60, 100]' in repr(bucketed())


@pytest.mark.parametrize('lengths, message', [
    ((40, 60), 'ending at max_length=100'),
    ((60, 40, 100), 'increasing'),
    ((40, 40, 100), 'increasing'),
    ((), 'increasing positive ints'),
    ((0, 100), 'positive'),
    ((40.0, 100), 'ints'),
    ((True, 100), 'ints'),
    ('40,100', 'ints'),
    (100, 'ints'),
])
def test_bad_bucket_lengths_are_one_clear_error(lengths, message):
  with pytest.raises(ValueError, match=message) as e:
    lra_listops_inputs(**SMALL, bucket_lengths=lengths)
  assert 'lra_listops_inputs: bucket_lengths' in str(e.value)


@pytest.mark.parametrize('split', ['validation', 'test'])
def test_held_out_splits_refuse_buckets_and_say_how_to_bind_them(split):
  with pytest.raises(ValueError, match='training split only') as e:
    lra_listops_inputs(split=split, **SMALL, bucket_lengths=BUCKETS)
  assert 'eval/lra_listops_inputs.bucket_lengths = None' in str(e.value)
