"""Tokenizers: character-level and SentencePiece, both saved next to checkpoints.

Both reserve id 0 for padding and 1 for end-of-sequence, so `AddLossWeights()` masks padding
and models can share one convention.

    tok = CharTokenizer.from_text('hello world')
    ids = tok.encode('hello')          # int32 array
    assert tok.decode(ids) == 'hello'
    path = tok.save(output_dir)        # output_dir/tokenizer.json
    tok = Tokenizer.load(output_dir)   # finds tokenizer.json or tokenizer.model
"""
import json
import os
import pathlib
import tempfile

import numpy as np

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
_FILE_NAMES = ('tokenizer.json', 'tokenizer.model')


class Tokenizer:
  """Maps text to int32 ids and back. Subclasses: CharTokenizer, SentencePieceTokenizer."""

  pad_id, eos_id = PAD_ID, EOS_ID

  @property
  def vocab_size(self):
    raise NotImplementedError

  def encode(self, text):
    """str -> np.ndarray[int32] of shape (n,)."""
    raise NotImplementedError

  def decode(self, ids):
    """ids (any int sequence; pad and eos are dropped) -> str."""
    raise NotImplementedError

  def save(self, path):
    """Writes the tokenizer into directory `path` (or to file `path`); returns the file path."""
    raise NotImplementedError

  @classmethod
  def load(cls, path):
    """Loads a tokenizer from a file, or from a directory holding tokenizer.json/.model."""
    path = pathlib.Path(path)
    if path.is_dir():
      found = [path / n for n in _FILE_NAMES if (path / n).exists()]
      if not found:
        raise FileNotFoundError(f'Tokenizer.load: no {" or ".join(_FILE_NAMES)} in {path}; '
                                'train one with plait.data.tokenizer_for(..., vocab_dir=...).')
      path = found[0]
    if not path.exists():
      raise FileNotFoundError(f'Tokenizer.load: {path} does not exist.')
    if path.suffix == '.json':
      return CharTokenizer.load(path)
    if path.suffix == '.model':
      return SentencePieceTokenizer.load(path)
    raise ValueError(f'Tokenizer.load: unknown tokenizer file {path}: expected a .json (char) '
                     'or .model (SentencePiece) file.')


def _as_ids(ids, name):
  ids = np.asarray(ids)
  if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f'{name}.decode: expects a 1-D sequence of int ids, got shape {ids.shape} '
                     f'dtype {ids.dtype}; decode batches row by row.')
  return ids


def _target_file(path, default_name):
  path = pathlib.Path(path)
  if path.suffix in ('.json', '.model'):
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
  path.mkdir(parents=True, exist_ok=True)
  return path / default_name


class CharTokenizer(Tokenizer):
  """One id per character: 0 = pad, 1 = eos, 2 = unknown, then the text's sorted characters."""

  def __init__(self, chars):
    chars = list(chars)
    if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
      raise ValueError('CharTokenizer: chars must be distinct single characters.')
    self._chars = chars
    self._ids = {c: i + 3 for i, c in enumerate(chars)}
    self._table = np.array(['', '', '\ufffd'] + chars, dtype=object)

  @classmethod
  def from_text(cls, text):
    """The vocabulary is the sorted set of characters in `text` (deterministic)."""
    if not text:
      raise ValueError('CharTokenizer.from_text: the text is empty.')
    return cls(sorted(set(text)))

  @property
  def vocab_size(self):
    return len(self._chars) + 3

  def encode(self, text):
    ids = self._ids
    return np.fromiter((ids.get(c, UNK_ID) for c in text), dtype=np.int32, count=len(text))

  def decode(self, ids):
    ids = _as_ids(ids, 'CharTokenizer')
    if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
      raise ValueError(f'CharTokenizer.decode: ids must be in [0, {self.vocab_size}), got '
                       f'range [{ids.min()}, {ids.max()}].')
    return ''.join(self._table[ids])

  def save(self, path):
    target = _target_file(path, 'tokenizer.json')
    target.write_text(json.dumps({'type': 'char', 'chars': ''.join(self._chars)}),
                      encoding='utf-8')
    return str(target)

  @classmethod
  def load(cls, path):
    spec = json.loads(pathlib.Path(path).read_text(encoding='utf-8'))
    if spec.get('type') != 'char':
      raise ValueError(f'CharTokenizer.load: {path} is not a char tokenizer file.')
    return cls(spec['chars'])


class SentencePieceTokenizer(Tokenizer):
  """A SentencePiece model (unigram by default); pad = 0, eos = 1, unk = 2, no bos.

  Trained without normalization and with '\\n' as a piece, so decode(encode(text)) == text for
  text made of characters seen in training (line breaks of a novel survive generation).
  """

  def __init__(self, model_proto):
    import sentencepiece as spm  # pylint: disable=import-outside-toplevel
    self._proto = bytes(model_proto)
    self._sp = spm.SentencePieceProcessor(model_proto=self._proto)

  @classmethod
  def train(cls, text, vocab_size, model_type='unigram', seed=0, max_sentences=200_000):
    """Trains on `text` (one sentence per non-empty line) with a fixed seed, in a temp dir."""
    import sentencepiece as spm  # pylint: disable=import-outside-toplevel
    lines = [line for line in text.splitlines() if line.strip()][:max_sentences]
    if not lines:
      raise ValueError('SentencePieceTokenizer.train: the text is empty.')
    spm.set_random_generator_seed(int(seed))
    with tempfile.TemporaryDirectory() as tmp:
      corpus = os.path.join(tmp, 'corpus.txt')
      with open(corpus, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))
      prefix = os.path.join(tmp, 'sp')
      try:
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=prefix, vocab_size=int(vocab_size),
            model_type=model_type, pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1,
            character_coverage=1.0, num_threads=1, minloglevel=2,
            hard_vocab_limit=True, shuffle_input_sentence=False,
            # Keep text exactly: newlines are a piece of their own, spaces are not collapsed.
            user_defined_symbols=['\n'], normalization_rule_name='identity',
            remove_extra_whitespaces=False)
      except RuntimeError as e:
        raise ValueError(f'SentencePieceTokenizer.train: could not train a {vocab_size}-piece '
                         f'model on this text ({e}); try a smaller vocab_size.') from e
      with open(prefix + '.model', 'rb') as f:
        return cls(f.read())

  @property
  def vocab_size(self):
    return self._sp.get_piece_size()

  def encode(self, text):
    return np.asarray(self._sp.encode(text), dtype=np.int32)

  def decode(self, ids):
    ids = _as_ids(ids, 'SentencePieceTokenizer')
    ids = ids[(ids != PAD_ID) & (ids != EOS_ID)]
    if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
      raise ValueError(f'SentencePieceTokenizer.decode: ids must be in [0, {self.vocab_size}), '
                       f'got range [{ids.min()}, {ids.max()}].')
    return self._sp.decode(ids.tolist())

  def save(self, path):
    target = _target_file(path, 'tokenizer.model')
    target.write_bytes(self._proto)
    return str(target)

  @classmethod
  def load(cls, path):
    return cls(pathlib.Path(path).read_bytes())
