"""lm_inputs: the (inputs, targets, weights) contract, splits, whole-novel mode, resume."""
import json

import numpy as np
import pytest

import plait.data as pd


@pytest.fixture
def novel(data_dir):
  return pd.crime_and_punishment(data_dir)


def test_batches_follow_the_lm_contract(data_dir):
  make = pd.lm_inputs(tokenizer='char', sequence_length=64, batch_size=4, data_path=data_dir)
  inputs, targets, weights = next(make())
  assert inputs.shape == targets.shape == weights.shape == (4, 64)
  assert inputs.dtype == targets.dtype == np.int32 and weights.dtype == np.float32
  np.testing.assert_array_equal(inputs, targets)
  np.testing.assert_array_equal(weights, np.ones((4, 64)))
  assert 3 <= inputs.min() and inputs.max() < make.tokenizer.vocab_size == make.vocab_size


def test_train_windows_come_from_train_chapters_only(data_dir, novel):
  train, eval_ = pd.split_chapters(novel)
  train_text, eval_text = ''.join(train), ''.join(eval_)
  make = pd.lm_inputs(sequence_length=48, batch_size=8, seed=3, data_path=data_dir)
  for row in next(make())[0]:
    window = make.tokenizer.decode(row)
    assert window in train_text and window not in eval_text


def test_eval_split_is_consecutive_windows_of_held_out_chapters(data_dir, novel):
  _, eval_ = pd.split_chapters(novel)
  make = pd.lm_inputs(sequence_length=32, batch_size=3, split='eval', seed=7, data_path=data_dir)
  rows = next(make())[0]
  assert ''.join(make.tokenizer.decode(r) for r in rows) == ''.join(eval_)[:96]
  np.testing.assert_array_equal(next(make())[0], rows)  # the same on every run


def test_same_seed_same_batches_other_seed_other_batches(data_dir):
  batch = lambda seed: next(pd.lm_inputs(sequence_length=16, batch_size=2, seed=seed,
                                         data_path=data_dir)())[0]
  np.testing.assert_array_equal(batch(1), batch(1))
  assert not np.array_equal(batch(1), batch(2))


def test_resume_continues_exactly(data_dir):
  make = pd.lm_inputs(sequence_length=16, batch_size=2, seed=5, data_path=data_dir)
  first = make()
  for _ in range(3):
    next(first)
  state = json.loads(json.dumps(first.get_state()))
  expected = [next(first)[0] for _ in range(2)]
  fresh = make()
  fresh.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(next(fresh)[0], want)


def test_whole_novel_is_padded_to_a_power_of_two_with_random_split(data_dir, novel):
  _, eval_ = pd.split_chapters(novel)
  make = pd.lm_inputs(split='eval', whole_novel=True, batch_size=4, seed=0, data_path=data_dir)
  ids = make.tokenizer.encode(''.join(eval_))
  inputs, targets, weights = next(make())
  length = inputs.shape[1]
  assert length & (length - 1) == 0 and length // 2 < len(ids) <= length
  lefts = []
  for row, w in zip(inputs, weights):
    nonzero = np.flatnonzero(w)
    left = nonzero[0]
    np.testing.assert_array_equal(row[left:left + len(ids)], ids)
    assert len(nonzero) == len(ids) and nonzero[-1] == left + len(ids) - 1
    assert not row[:left].any() and not row[left + len(ids):].any()
    lefts.append(left)
  assert len(set(lefts)) > 1  # the padding is split at random, not always on one side
  np.testing.assert_array_equal(inputs, targets)


def test_whole_novel_shorter_than_the_text_draws_windows_from_all_of_it(data_dir, novel):
  # A whole-novel config shrunk for a CPU: 64-token windows of the whole split, not its start.
  train, eval_ = pd.split_chapters(novel)
  train_text, eval_text = ''.join(train), ''.join(eval_)
  make = pd.lm_inputs(whole_novel=True, sequence_length=64, batch_size=32, seed=4,
                      data_path=data_dir)
  inputs, targets, weights = next(make())
  assert inputs.shape == (32, 64) and weights.all()
  np.testing.assert_array_equal(inputs, targets)
  starts = []
  for row in inputs:
    window = make.tokenizer.decode(row)
    assert window in train_text and window not in eval_text
    starts.append(train_text.index(window))
  assert len(set(starts)) == 32 and max(starts) > len(train_text) // 2
  np.testing.assert_array_equal(next(make())[0], inputs)  # same seed, same windows
  held_out = pd.lm_inputs(whole_novel=True, sequence_length=64, batch_size=3, split='eval',
                          data_path=data_dir)
  rows = next(held_out())[0]
  assert ''.join(held_out.tokenizer.decode(r) for r in rows) == eval_text[:192]
  assert all(held_out.tokenizer.decode(r) not in train_text for r in rows)


def test_whole_novel_rejects_a_length_that_is_not_a_power_of_two(data_dir):
  with pytest.raises(ValueError, match='power of two'):
    pd.lm_inputs(split='eval', whole_novel=True, sequence_length=300_000, data_path=data_dir)


def test_sentencepiece_inputs_save_the_tokenizer_for_decoding(tmp_path, novel):
  path = tmp_path / 'small.txt'
  path.write_text(novel[:60_000], encoding='utf-8')
  out = tmp_path / 'run'
  make = pd.lm_inputs(text_source=str(path), tokenizer='sentencepiece', vocab_size=200,
                      sequence_length=32, batch_size=2, split='all', vocab_dir=out)
  inputs, _, _ = next(make())
  assert inputs.shape == (2, 32) and inputs.max() < 200
  loaded = pd.Tokenizer.load(out)
  assert loaded.decode(inputs[0]) in novel[:60_000]


def test_bad_arguments_give_clear_errors(tmp_path, data_dir):
  with pytest.raises(ValueError, match='unknown text_source'):
    pd.lm_inputs(text_source='war_and_peace')
  with pytest.raises(ValueError, match='split must be'):
    pd.lm_inputs(split='test', data_path=data_dir)
  with pytest.raises(ValueError, match='seed must be'):
    pd.lm_inputs(seed=-1, data_path=data_dir)
  binary = tmp_path / 'bin.txt'
  binary.write_bytes(b'\x00\x01\x02' * 10)
  with pytest.raises(ValueError, match='binary'):
    pd.lm_inputs(text_source=str(binary))


def test_training_loop_stream_saves_and_restores_the_position(data_dir):
  from plait.supervised.streams import BatchStream
  make = pd.lm_inputs(sequence_length=16, batch_size=2, seed=9, data_path=data_dir)
  stream = BatchStream(make)
  assert stream.stateful
  for _ in range(3):
    next(stream)
  stream.peek()  # peeking must not move the saved position
  position = json.loads(json.dumps(stream.position()))
  want = next(stream)[0]
  resumed = BatchStream(make)
  resumed.restore(position)
  np.testing.assert_array_equal(next(resumed)[0], want)
