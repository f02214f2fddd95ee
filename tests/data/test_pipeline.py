"""Serial/sources: determinism, JSON state, exact resume of every stateful stage."""
import json

import numpy as np
import pytest

import plait.data as pd
from tests.conftest import random_array


def _examples(n=50, seed=0):
  """Variable-length int sequences, all distinct (first token is the index)."""
  rng = np.random.default_rng(seed)
  return [np.concatenate([[i + 1], rng.integers(1, 100, rng.integers(1, 12))]).astype(np.int32)
          for i in range(n)]


def _pipelines():
  data = _examples()
  return {
      'shuffle_batch': lambda: pd.Serial(
          pd.FromSequence(data, shuffle=True, seed=3, repeat=True), pd.Shuffle(7, seed=1),
          pd.PadToLength(12), pd.Batch(4)),
      'bucket': lambda: pd.Serial(
          pd.FromSequence(data, shuffle=True, seed=3, repeat=True), pd.Shuffle(5, seed=2),
          pd.BucketByLength([4, 8], [3, 2, 2])),
      'prefetch_log': lambda: pd.Serial(
          pd.FromSequence(data, repeat=True), pd.Log(every=1000, log_fn=lambda s: None),
          pd.TruncateToLength(6), pd.PadToLength(6), pd.Map(lambda x: (x, x)),
          pd.AddLossWeights(), pd.Batch(3), pd.Prefetch(2)),
      'generate': lambda: pd.Serial(
          pd.Generate(lambda rng: rng.integers(0, 9, 5), seed=4), pd.Shuffle(3, seed=0),
          pd.Batch(2)),
      'plain_list': lambda: pd.Serial(list(range(40)), pd.Batch(2)),
  }


def _as_list(batch):
  return [np.asarray(x).tolist() for x in (batch if isinstance(batch, tuple) else (batch,))]


@pytest.mark.parametrize('name', list(_pipelines()))
def test_same_seed_same_batches(name):
  make = _pipelines()[name]
  a, b = make(), make()
  for _ in range(6):
    assert _as_list(next(a)) == _as_list(next(b))


@pytest.mark.parametrize('name', list(_pipelines()))
def test_resume_from_state_gives_the_same_next_batches(name):
  make = _pipelines()[name]
  first = make()
  for _ in range(5):
    next(first)
  state = json.loads(json.dumps(first.get_state()))  # survives a JSON round trip
  expected = [_as_list(next(first)) for _ in range(8)]
  fresh = make()
  fresh.set_state(state)
  assert [_as_list(next(fresh)) for _ in range(8)] == expected


def test_different_seeds_give_different_orders():
  data = list(range(30))
  a = list(pd.Serial(pd.FromSequence(data, shuffle=True, seed=0)))
  b = list(pd.Serial(pd.FromSequence(data, shuffle=True, seed=1)))
  assert sorted(a) == sorted(b) == data and a != b


def test_from_sequence_visits_each_item_once_per_epoch_in_fresh_orders():
  stream = pd.Serial(pd.FromSequence(list(range(10)), shuffle=True, seed=5, repeat=True))
  epoch1, epoch2 = [next(stream) for _ in range(10)], [next(stream) for _ in range(10)]
  assert sorted(epoch1) == sorted(epoch2) == list(range(10)) and epoch1 != epoch2


def test_serial_of_stages_composes_into_one_stage():
  x = random_array((6, 3))
  inner = pd.Serial(pd.Map(lambda v: v * 2), pd.Batch(3))
  out = list(pd.Serial(list(x), inner))
  np.testing.assert_allclose(out[0], x[:3] * 2, rtol=0, atol=0)
  assert len(out) == 2


def test_set_state_rejects_a_foreign_state():
  p = pd.Serial(list(range(4)), pd.Batch(2))
  with pytest.raises(ValueError, match='Pipeline.set_state'):
    p.set_state({'count': 3})
  with pytest.raises(ValueError, match='stages'):
    p.set_state(pd.Serial(list(range(4))).get_state())


def test_serial_rejects_a_stage_first_source_later():
  with pytest.raises(TypeError, match='not a Stage'):
    pd.Serial(pd.Batch(2), [1, 2, 3])


def test_one_shot_iterator_source_resumes_by_replay_only_once():
  p = pd.Serial(iter(range(10)), pd.Batch(2))
  assert next(p).tolist() == [0, 1]
  assert p.get_state()['stream'] == {'count': 2}
