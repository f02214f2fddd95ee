"""Prefetch: same order as without it, exceptions surface in the consumer, resumable."""
import pytest

import plait.data as pd


def test_prefetch_preserves_order_and_ends():
  assert list(pd.Serial(list(range(100)), pd.Prefetch(3))) == list(range(100))


def test_prefetch_propagates_upstream_exceptions():
  def boom(x):
    if x == 5:
      raise KeyError('bad example 5')
    return x

  stream = pd.Serial(list(range(10)), pd.Map(boom), pd.Prefetch(2))
  assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
  with pytest.raises(KeyError, match='bad example 5'):
    next(stream)


def test_prefetch_state_counts_only_consumed_items():
  make = lambda: pd.Serial(pd.Generate(lambda r: r.integers(0, 1000), seed=1), pd.Prefetch(4))
  a = make()
  for _ in range(3):
    next(a)
  state = a.get_state()
  assert state['stream'] == {'index': 3}
  expected = [int(next(a)) for _ in range(5)]
  b = make()
  b.set_state(state)
  assert [int(next(b)) for _ in range(5)] == expected
  a.close()
  b.close()


def test_prefetch_rejects_bad_buffer_size():
  with pytest.raises(ValueError, match='Prefetch'):
    pd.Prefetch(0)
