"""duplication_inputs: the `0 w 0 w` format, loss weights on the copy only, determinism, resume."""
import json

import numpy as np
import pytest

import plait.data as pd


def test_batches_are_0w0w_with_weights_on_the_second_w():
  length, vocab = 24, 9
  inputs, targets, weights = next(pd.duplication_inputs(length, vocab, batch_size=5, seed=1)())
  assert inputs.shape == targets.shape == weights.shape == (5, length)
  assert inputs.dtype == targets.dtype == np.int32 and weights.dtype == np.float32
  np.testing.assert_array_equal(inputs, targets)
  half = length // 2
  np.testing.assert_array_equal(inputs[:, :half], inputs[:, half:])
  np.testing.assert_array_equal(inputs[:, 0], 0)
  w = inputs[:, 1:half]
  assert w.min() >= 1 and w.max() <= vocab - 1
  expected = np.zeros(length, np.float32)
  expected[half + 1:] = 1
  np.testing.assert_array_equal(weights, np.broadcast_to(expected, (5, length)))


def test_symbols_are_uniform_over_the_vocabulary_without_the_separator():
  inputs, _, _ = next(pd.duplication_inputs(1024, 5, batch_size=16, seed=0)())
  counts = np.bincount(inputs[:, 1:512].ravel(), minlength=5)
  assert counts[0] == 0
  n = counts.sum()   # 16 * 511 draws: each symbol 1/4 of them, sigma ~ 39
  assert np.all(np.abs(counts[1:] - n / 4) < 5 * np.sqrt(n * 3 / 16)), counts


def test_same_seed_same_batches_other_seed_other_batches():
  def first_two(seed):
    stream = pd.duplication_inputs(16, 50, batch_size=3, seed=seed)()
    return np.stack([next(stream)[0] for _ in range(2)])
  np.testing.assert_array_equal(first_two(4), first_two(4))
  assert not np.array_equal(first_two(4), first_two(5))
  batches = first_two(4)
  assert not np.array_equal(batches[0], batches[1])


def test_set_state_resumes_exactly_on_a_fresh_stream():
  make = pd.duplication_inputs(16, 50, batch_size=2, seed=7)
  stream = make()
  for _ in range(3):
    next(stream)
  saved = json.loads(json.dumps(stream.get_state()))
  expected = [next(stream) for _ in range(2)]
  fresh = make()
  fresh.set_state(saved)
  for want in expected:
    for got_array, want_array in zip(next(fresh), want):
      np.testing.assert_array_equal(got_array, want_array)


@pytest.mark.parametrize('kwargs', [dict(length=15), dict(length=2), dict(vocab_size=1),
                                    dict(batch_size=0), dict(seed=-1)])
def test_bad_arguments_raise_with_the_argument_named(kwargs):
  name = next(iter(kwargs))
  with pytest.raises(ValueError, match=name):
    pd.duplication_inputs(**kwargs)
