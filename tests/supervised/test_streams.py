"""BatchStream: checkpointable positions for stateful and plain iterators."""
import itertools

import numpy as np
import pytest

from plait.supervised.streams import BatchStream, DataError
from tests.supervised import helpers


def _ids(batches):
  return [int(b[0][0, 0]) for b in batches]


def test_stateful_position_survives_a_peek():
  stream = BatchStream(helpers.RandomTokens())
  for _ in range(3):
    next(stream)
  stream.peek()
  fresh = BatchStream(helpers.RandomTokens())
  fresh.restore(stream.position())
  assert _ids([next(fresh) for _ in range(2)]) == _ids([next(stream) for _ in range(2)])


def test_plain_iterator_is_fast_forwarded_even_after_a_peek():
  def make():
    return (np.full((1, 1), i) for i in itertools.count())
  stream = BatchStream(make)
  for _ in range(4):
    next(stream)
  fresh = BatchStream(make)
  fresh.peek()  # the Loop peeks for the input signature
  fresh.restore(stream.position())
  assert int(next(fresh)[0, 0]) == 4 and fresh.count == 5


def test_finite_stream_says_it_ran_out():
  stream = BatchStream(iter([(np.ones(2),)]))
  next(stream)
  with pytest.raises(DataError, match='ran out after 1 batches.*infinite'):
    next(stream)
