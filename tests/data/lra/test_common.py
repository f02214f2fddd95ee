"""The shared parts of plait.data.lra: memoized generated splits and the batch pipeline."""
import pickle
import subprocess
import sys

import numpy as np
import pytest

from plait.data.lra import common
from plait.data.lra import image
from plait.data.lra import listops
from plait.data.lra import pathfinder
from plait.data.lra import retrieval
from plait.data.lra import text
from plait.data.pipeline import FromSequence, Serial
from plait.data.stages import Batch


class Squares(common.GeneratedExamples):
  """Item i: tokens [i, i*i % 256, 0], label i % 3; counts how often each is generated."""

  def __init__(self, n):
    self.n_examples, self.length, self.calls = n, 3, []

  def generate(self, i):
    self.calls.append(i)
    return np.array([i, i * i % 256, 0]), i % 3


def test_generated_examples_are_made_once_and_read_as_int32():
  examples = Squares(5)
  first = examples[4]
  again = examples[4]
  assert examples.calls == [4]
  np.testing.assert_array_equal(first[0], [4, 16, 0])
  assert first[0].dtype == np.int32 and first[1].dtype == np.int32 and first[2] == 1.0
  np.testing.assert_array_equal(again[0], first[0])
  with pytest.raises(IndexError, match='out of range'):
    examples[5]  # pylint: disable=pointless-statement


def test_fill_in_process_makes_the_rest_and_pickles_without_the_memo():
  examples = Squares(4)
  examples[1]  # pylint: disable=pointless-statement
  examples.fill(1)
  assert sorted(examples.calls) == [0, 1, 2, 3]
  copy = pickle.loads(pickle.dumps(examples))
  assert copy._memo is None and copy.n_examples == 4  # pylint: disable=protected-access


class CachedSquares(Squares):
  version = 1

  def cache_name(self):
    return f'squares_n{self.n_examples}'

  def generate(self, i):
    tokens, label = super().generate(i)
    return tokens * self.version % 256, label


def test_a_cached_split_is_made_once_then_read_back(tmp_path, capsys):
  first = CachedSquares(6).fill_cached(tmp_path, workers=0)
  assert sorted(first.calls) == list(range(6))
  assert sorted(p.name for p in tmp_path.iterdir()) == ['squares_n6.npz']
  again = CachedSquares(6).fill_cached(tmp_path, workers=0)
  assert sorted(again.calls) == [0, 3, 5]   # only the three spot checks
  for i in range(6):
    for a, b in zip(again[i], first[i]):
      np.testing.assert_array_equal(a, b)
      assert a.dtype == b.dtype
  assert capsys.readouterr().err == ''


@pytest.mark.parametrize('damage', ['junk', 'shape', 'generator_changed'])
def test_a_cached_split_that_will_not_do_is_made_again_with_a_warning(tmp_path, capsys, damage):
  CachedSquares(6).fill_cached(tmp_path, workers=0)
  path = tmp_path / 'squares_n6.npz'
  if damage == 'junk':
    path.write_bytes(b'not a zip file')
  elif damage == 'shape':
    np.savez_compressed(path, tokens=np.zeros((5, 3), np.uint8), labels=np.zeros(5, np.int32))
  examples = CachedSquares(6)
  if damage == 'generator_changed':
    examples.version = 3
  examples.fill_cached(tmp_path, workers=0)
  assert sorted(set(examples.calls)) == list(range(6))       # made again
  expected = {'junk': 'cannot be read', 'shape': 'holds tokens uint8[5, 3]',
              'generator_changed': 'holds examples the generator no longer makes'}[damage]
  assert expected in capsys.readouterr().err
  reread = CachedSquares(6)
  reread.version = examples.version
  reread.fill_cached(tmp_path, workers=0)                    # and the file replaced
  assert sorted(reread.calls) == [0, 3, 5]
  np.testing.assert_array_equal(reread[4][0], examples[4][0])


def test_lra_inputs_with_a_cache_dir_give_the_same_batches(tmp_path):
  make = lambda: pathfinder.lra_pathfinder_inputs(split='validation', batch_size=4,
                                                  n_examples=8, cache_dir=tmp_path)
  made, cached = next(make()()), next(make()())
  plain = next(pathfinder.lra_pathfinder_inputs(split='validation', batch_size=4,
                                                n_examples=8)())
  for a, b, c in zip(made, cached, plain):
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, c)
  names = [p.name for p in tmp_path.iterdir()]
  assert names == [f'pathfinder32_validation_seed0_n8_v{pathfinder.GENERATOR_VERSION}.npz']
  lo = listops.lra_listops_inputs(split='test', n_examples=3, min_length=20, max_length=60,
                                  cache_dir=tmp_path)
  assert f'listops_test_seed0_n3_len20-60_v{listops.GENERATOR_VERSION}.npz' in [
      p.name for p in tmp_path.iterdir()]
  assert lo.examples._memo[2].all()  # pylint: disable=protected-access


def test_train_reshuffles_and_eval_keeps_order():
  inputs = common.LRAInputs('squares', Squares(6), 'validation', 3, 0, 256, 3, 3)
  stream = inputs()
  order = [int(x) for _ in range(4) for x in next(stream)[0][:, 0]]
  assert order == [0, 1, 2, 3, 4, 5] * 2
  train = common.LRAInputs('squares', Squares(6), 'train', 6, 0, 256, 3, 3)()
  first, second = (sorted(next(train)[0][:, 0]) for _ in range(2))
  assert first == second == list(range(6))


def test_bytes_become_ids_plus_one_cut_and_padded():
  np.testing.assert_array_equal(common.pad_bytes(b'\x00\xffab', 3), [1, 256, 98])
  np.testing.assert_array_equal(common.pad_bytes(b'a', 3), [98, 0, 0])
  assert common.as_bytes('é') == b'\xc3\xa9' and common.as_bytes(np.array(b'x')) == b'x'


def test_every_task_module_exports_the_agreed_constants():
  agreed = {listops: (16, 10, 2000), pathfinder: (256, 2, 1024), image: (256, 10, 1024),
            text: (257, 2, 4000), retrieval: (257, 2, 4000)}
  for module, constants in agreed.items():
    assert (module.VOCAB_SIZE, module.N_CLASSES, module.MAX_LENGTH) == constants, module



class ItemsOnly:
  """The same examples without `stacked`: FromSequence's batches read them one by one."""

  def __init__(self, examples):
    self._examples = examples

  def __len__(self):
    return len(self._examples)

  def __getitem__(self, i):
    return self._examples[i]


def _squares_inputs(split, wrap=lambda examples: examples):
  return common.LRAInputs('squares', wrap(Squares(10)), split, 4, 3, 256, 3, 3)


@pytest.mark.parametrize('split', ['train', 'validation'])
def test_a_batch_is_one_gather_with_the_items_epochs_and_state_of_reading_one_by_one(split):
  """10 examples in batches of 4: batches cross epochs (train: a fresh permutation each)."""
  gathered, one_by_one = _squares_inputs(split)(), _squares_inputs(split, ItemsOnly)()
  states = []
  for _ in range(7):
    got, want = next(gathered), next(one_by_one)
    for a, b in zip(got, want):
      np.testing.assert_array_equal(a, b)
      assert (a.dtype, a.shape) == (b.dtype, b.shape)
    assert gathered.get_state() == one_by_one.get_state()
    states.append(gathered.get_state())
  resumed = _squares_inputs(split)()
  resumed.set_state(states[2])
  fresh = _squares_inputs(split, ItemsOnly)()
  for _ in range(3):
    next(fresh)
  np.testing.assert_array_equal(next(resumed)[0], next(fresh)[0])


def test_a_gather_makes_each_missing_example_once_and_stops_where_reading_would():
  examples = Squares(10)
  stream = Serial(FromSequence(examples), Batch(4))
  np.testing.assert_array_equal(next(stream)[0][:, 0], [0, 1, 2, 3])
  np.testing.assert_array_equal(next(stream)[0][:, 0], [4, 5, 6, 7])
  with pytest.raises(StopIteration):
    next(stream)   # 2 left: no partial batch
  assert sorted(examples.calls) == list(range(8))   # each once; the dropped two not at all
  assert stream.get_state()['stream'] == {'epoch': 0, 'index': 10}
  transformed = Serial(FromSequence(Squares(4), transform=lambda ex: (ex[0] + 1, *ex[1:])),
                       Batch(2))
  np.testing.assert_array_equal(next(transformed)[0][:, 0], [1, 2])   # read one by one


def test_a_split_made_with_workers_outside_the_main_guard_is_one_error_not_a_hang(tmp_path):
  """Workers are spawned, which imports the main script again: a script that makes a split
  with workers at its top level (no `if __name__ == '__main__':`) kills every worker as it
  starts. That must stop with one message naming the remedy, not wait forever."""
  script = tmp_path / 'make_split.py'
  script.write_text('from plait.data.lra import lra_listops_inputs\n'
                    "lra_listops_inputs(split='test', n_examples=600, min_length=10, "
                    'max_length=50, workers=2)\n')
  out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
  assert out.returncode == 1, out.stderr[-3000:]
  # The dead workers' semaphores make multiprocessing's resource tracker (its own process)
  # warn at shutdown, sometimes after the error: its lines are not the script's.
  last = [line for line in out.stderr.strip().splitlines() if 'resource_tracker' not in line][-1]
  assert last.startswith('RuntimeError: lra_listops_inputs: making the test split'), last
  assert "if __name__ == '__main__':" in last and 'workers=0' in last, last
