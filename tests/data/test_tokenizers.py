"""Char and SentencePiece tokenizers: round trips, reserved ids, save/load."""
import numpy as np
import pytest

import plait.data as pd

_TEXT = ('He was crushed by poverty, but the anxieties of his position had of late ceased '
         'to weigh upon him. “Why am I going there now?” — Raskolnikov thought.\n') * 40


def test_char_round_trip_and_reserved_ids():
  tok = pd.CharTokenizer.from_text(_TEXT)
  ids = tok.encode(_TEXT)
  assert ids.dtype == np.int32 and ids.min() >= 3 and ids.max() < tok.vocab_size
  assert tok.decode(ids) == _TEXT
  assert tok.vocab_size == len(set(_TEXT)) + 3
  assert tok.decode(np.concatenate([ids[:5], [1, 0, 0]])) == _TEXT[:5]  # eos/pad vanish


def test_char_vocab_is_deterministic_and_sorted():
  a, b = pd.CharTokenizer.from_text('cab'), pd.CharTokenizer.from_text('bca')
  np.testing.assert_array_equal(a.encode('abc'), [3, 4, 5])
  np.testing.assert_array_equal(a.encode('abc'), b.encode('abc'))


def test_char_unknown_character_maps_to_unk():
  tok = pd.CharTokenizer.from_text('ab')
  np.testing.assert_array_equal(tok.encode('az'), [3, 2])


def test_char_save_load(tmp_path):
  tok = pd.CharTokenizer.from_text(_TEXT)
  path = tok.save(tmp_path)
  assert path.endswith('tokenizer.json')
  loaded = pd.Tokenizer.load(tmp_path)
  np.testing.assert_array_equal(loaded.encode(_TEXT), tok.encode(_TEXT))


def test_sentencepiece_round_trip_and_save_load(tmp_path):
  tok = pd.SentencePieceTokenizer.train(_TEXT, vocab_size=50, seed=0)
  assert tok.vocab_size == 50
  ids = tok.encode(_TEXT[:200])
  assert ids.dtype == np.int32 and len(ids) < 200 and ids.min() > 1
  assert tok.decode(ids) == _TEXT[:200]
  tok.save(tmp_path)
  loaded = pd.Tokenizer.load(tmp_path / 'tokenizer.model')
  np.testing.assert_array_equal(loaded.encode(_TEXT[:200]), ids)
  again = pd.SentencePieceTokenizer.train(_TEXT, vocab_size=50, seed=0)
  np.testing.assert_array_equal(again.encode(_TEXT), tok.encode(_TEXT))


def test_tokenizer_for_saves_next_to_checkpoints_and_reloads(tmp_path):
  text_file = tmp_path / 't.txt'
  text_file.write_text(_TEXT, encoding='utf-8')
  out = tmp_path / 'run'
  tok = pd.tokenizer_for('char', text_source=str(text_file), vocab_dir=out)
  assert (out / 'tokenizer.json').exists()
  again = pd.tokenizer_for('char', text_source='unused-because-saved', vocab_dir=out)
  assert again.decode(tok.encode('poverty')) == 'poverty'


def test_tokenizer_errors(tmp_path):
  with pytest.raises(ValueError, match='unknown tokenizer'):
    pd.tokenizer_for('bpe-magic', text='abc')
  with pytest.raises(ValueError, match='needs vocab_size'):
    pd.tokenizer_for('sentencepiece', text=_TEXT)
  with pytest.raises(ValueError, match='raise vocab_size'):
    pd.tokenizer_for('char', vocab_size=5, text=_TEXT)
  with pytest.raises(ValueError, match='empty'):
    pd.CharTokenizer.from_text('')
  with pytest.raises(ValueError, match='1-D'):
    pd.CharTokenizer.from_text('ab').decode(np.ones((2, 2), np.int32))
  with pytest.raises(FileNotFoundError, match='tokenizer.json'):
    pd.Tokenizer.load(tmp_path)
  with pytest.raises(ValueError, match='smaller vocab_size'):
    pd.SentencePieceTokenizer.train(_TEXT, vocab_size=5000)
