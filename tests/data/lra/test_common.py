"""The shared parts of plait.data.lra: memoized generated splits and the batch pipeline."""
import pickle

import numpy as np
import pytest

from plait.data.lra import common
from plait.data.lra import image
from plait.data.lra import listops
from plait.data.lra import pathfinder
from plait.data.lra import retrieval
from plait.data.lra import text


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
