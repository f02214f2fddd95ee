"""Stage semantics: Shuffle, Batch, padding, truncation, loss weights, buckets, Log, Filter."""
import numpy as np
import pytest

import plait.data as pd


def test_shuffle_is_a_permutation_within_the_buffer():
  n, q = 200, 16
  out = list(pd.Serial(list(range(n)), pd.Shuffle(q, seed=0)))
  assert sorted(out) == list(range(n))
  assert out != list(range(n))
  for i, x in enumerate(out):
    assert x < q + i  # output i comes from the first q + i inputs


def test_shuffle_with_queue_size_one_keeps_order():
  assert list(pd.Serial(list(range(20)), pd.Shuffle(1, seed=3))) == list(range(20))


def test_batch_stacks_tuples_and_drops_the_remainder():
  data = [(np.full(3, i, np.int32), np.float32(i)) for i in range(7)]
  batches = list(pd.Serial(data, pd.Batch(3)))
  assert len(batches) == 2
  x, y = batches[1]
  assert x.shape == (3, 3) and x.dtype == np.int32 and y.shape == (3,)
  np.testing.assert_array_equal(x[:, 0], [3, 4, 5])


def test_batch_of_ragged_examples_says_to_pad():
  with pytest.raises(ValueError, match='PadToLength'):
    next(pd.Serial([np.ones(2), np.ones(3)], pd.Batch(2)))


def test_pad_and_truncate_to_length():
  x = np.arange(1, 6, dtype=np.int32)
  padded = next(pd.Serial([(x, x[:2])], pd.PadToLength(8, pad_value=-1)))
  np.testing.assert_array_equal(padded[0], [1, 2, 3, 4, 5, -1, -1, -1])
  np.testing.assert_array_equal(padded[1], [1, 2, -1, -1, -1, -1, -1, -1])
  cut = next(pd.Serial([(x, x[:2])], pd.TruncateToLength(3)))
  np.testing.assert_array_equal(cut[0], [1, 2, 3])
  np.testing.assert_array_equal(cut[1], [1, 2])


def test_pad_to_length_too_long_says_to_truncate():
  with pytest.raises(ValueError, match='TruncateToLength'):
    next(pd.Serial([np.arange(9)], pd.PadToLength(4)))


def test_add_loss_weights_zero_at_padding():
  x = np.array([5, 7, 2, 0, 0], np.int32)
  inputs, targets, weights = next(pd.Serial([(x, x)], pd.AddLossWeights()))
  np.testing.assert_array_equal(weights, [1, 1, 1, 0, 0])
  assert weights.dtype == np.float32 and inputs is not None and targets is not None


def test_add_loss_weights_needs_pairs():
  with pytest.raises(ValueError, match=r'AddLossWeights: expects \(inputs, targets\)'):
    next(pd.Serial([np.arange(3)], pd.AddLossWeights()))


def test_concatenate_to_lm_input_masks_the_prompt():
  ex = (np.array([4, 5], np.int32), np.array([6, 7, 8], np.int32))
  seq, tgt, w = next(pd.Serial([ex], pd.ConcatenateToLMInput(pad_to_length=7)))
  np.testing.assert_array_equal(seq, [4, 5, 6, 7, 8, 0, 0])
  np.testing.assert_array_equal(tgt, seq)
  np.testing.assert_array_equal(w, [0, 0, 1, 1, 1, 0, 0])


def test_bucket_by_length_groups_and_pads_to_the_boundary():
  rng = np.random.default_rng(0)
  data = [np.arange(1, rng.integers(1, 12) + 1) for _ in range(60)]
  batches = list(pd.Serial(data, pd.BucketByLength([4, 8], [4, 3, 2], pad_value=0)))
  assert len(batches) >= 5
  for b in batches:
    lengths = (b != 0).sum(axis=1)
    if b.shape[1] == 4:
      assert b.shape[0] == 4 and lengths.max() <= 4
    elif b.shape[1] == 8:
      assert b.shape[0] == 3 and 4 < lengths.min() and lengths.max() <= 8
    else:
      assert b.shape[0] == 2 and lengths.min() > 8 and b.shape[1] == lengths.max()
    for row, n in zip(b, lengths):
      np.testing.assert_array_equal(row[:n], np.arange(1, n + 1))


def test_bucket_by_length_checks_its_arguments():
  with pytest.raises(ValueError, match='len\\(boundaries\\) \\+ 1'):
    pd.BucketByLength([4, 8], [2, 2])


def test_filter_and_map():
  out = list(pd.Serial(list(range(10)), pd.Filter(lambda x: x % 3 == 0), pd.Map(lambda x: -x)))
  assert out == [0, -3, -6, -9]


def test_log_prints_shapes():
  lines = []
  list(pd.Serial([np.zeros((2, 3), np.int32)] * 3, pd.Log(every=2, log_fn=lines.append)))
  assert lines == ['Log[0]: int32[2, 3]', 'Log[2]: int32[2, 3]']
