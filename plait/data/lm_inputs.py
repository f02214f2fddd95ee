"""Ready-made language-model inputs: text -> tokens -> (inputs, targets, weights) batches.

    make = plait.data.lm_inputs(tokenizer='char', sequence_length=256, batch_size=8)
    stream = make()                       # a resumable Pipeline
    inputs, targets, weights = next(stream)   # int32 (8, 256), int32 (8, 256), float32 (8, 256)

inputs == targets: models shift right internally (as in Trax). Weights are 0 at padding.
"""
import hashlib
import pathlib

import numpy as np

from plait.data import text as text_lib
from plait.data.pipeline import FromSequence, Generate, Serial
from plait.data.stages import AddLossWeights, Batch, Map
from plait.data.tokenizers import CharTokenizer, SentencePieceTokenizer, Tokenizer

TEXT_SOURCES = ('crime_and_punishment',)
_TOKENIZERS = {}  # in-process memo: training SentencePiece on the novel takes seconds


def load_text(text_source='crime_and_punishment', data_path=None):
  """'crime_and_punishment' (see `crime_and_punishment`) or the path of a UTF-8 text file."""
  if text_source == 'crime_and_punishment':
    return text_lib.crime_and_punishment(data_path)
  if pathlib.Path(str(text_source)).is_file():
    return text_lib.text_file(text_source)
  raise ValueError(f'lm_inputs: unknown text_source {text_source!r}: use one of {TEXT_SOURCES} '
                   'or the path of an existing text file.')


def tokenizer_for(tokenizer='char', vocab_size=None, text_source='crime_and_punishment',
                  data_path=None, vocab_dir=None, seed=0, text=None):
  """The tokenizer for a text, loaded from `vocab_dir` if saved there, else built and saved.

  Args:
    tokenizer: 'char', 'sentencepiece', a Tokenizer, or the path of a saved tokenizer.
    vocab_size: SentencePiece vocabulary size (required for it); for 'char', an upper bound
      that is checked (the vocabulary comes from the text).
    text_source, data_path: the text to build it from (see `load_text`), unless `text` is given.
    vocab_dir: a directory (e.g. the training output_dir) to load from / save into, so that
      decoding later uses exactly the same tokenizer.
    seed: SentencePiece training seed.
  """
  if isinstance(tokenizer, Tokenizer):
    return tokenizer
  if tokenizer not in ('char', 'sentencepiece'):
    if pathlib.Path(str(tokenizer)).exists():
      return Tokenizer.load(tokenizer)
    raise ValueError(f'tokenizer_for: unknown tokenizer {tokenizer!r}: use "char", '
                     '"sentencepiece" or the path of a saved tokenizer.')
  if vocab_dir is not None:
    name = 'tokenizer.json' if tokenizer == 'char' else 'tokenizer.model'
    saved = pathlib.Path(vocab_dir) / name
    if saved.exists():
      return _check_size(Tokenizer.load(saved), tokenizer, vocab_size)
  if text is None:
    text = load_text(text_source, data_path)
  digest = hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]
  key = (tokenizer, vocab_size, digest, seed)
  if key not in _TOKENIZERS:
    if tokenizer == 'char':
      _TOKENIZERS[key] = CharTokenizer.from_text(text)
    else:
      if vocab_size is None:
        raise ValueError('tokenizer_for: SentencePiece needs vocab_size (e.g. 320 or 8192).')
      cached = text_lib.cache_dir() / 'tokenizers' / f'sp_{digest}_{vocab_size}_{seed}.model'
      if cached.exists():
        _TOKENIZERS[key] = SentencePieceTokenizer.load(cached)
      else:
        _TOKENIZERS[key] = SentencePieceTokenizer.train(text, vocab_size, seed=seed)
        try:
          _TOKENIZERS[key].save(cached)
        except OSError:
          pass  # a read-only cache only costs retraining next time
  result = _check_size(_TOKENIZERS[key], tokenizer, vocab_size)
  if vocab_dir is not None:
    result.save(vocab_dir)
  return result


def _check_size(tok, kind, vocab_size):
  if vocab_size is not None and tok.vocab_size > vocab_size:
    raise ValueError(f'tokenizer_for: the {kind} tokenizer has {tok.vocab_size} ids but '
                     f'vocab_size={vocab_size}; raise vocab_size to at least {tok.vocab_size}.')
  if kind == 'sentencepiece' and vocab_size is not None and tok.vocab_size != vocab_size:
    raise ValueError(f'tokenizer_for: the saved SentencePiece model has {tok.vocab_size} pieces, '
                     f'not vocab_size={vocab_size}; use the same vocab_size or another vocab_dir.')
  return tok


def _next_power_of_two(n):
  return 1 << max(0, int(n - 1).bit_length())


def whole_sequence_example(ids, length, rng):
  """The whole token sequence, randomly split padding: left pad ~ U{0..length-n}, rest right.

  Random left padding (as in the Trax Reformer colab) makes every position see every part of
  the text during training. Returns an int32 (length,) array.
  """
  pad = length - len(ids)
  left = int(rng.integers(0, pad + 1))
  return np.pad(ids, (left, pad - left)).astype(np.int32)


def random_window(ids, length, rng):
  """A random window of `length` tokens (zero-padded if the text is shorter)."""
  if len(ids) <= length:
    return np.pad(ids, (0, length - len(ids))).astype(np.int32)
  start = int(rng.integers(0, len(ids) - length + 1))
  return ids[start:start + length]


class LMInputs:
  """A zero-argument callable returning a fresh resumable batch Pipeline (see `lm_inputs`)."""

  def __init__(self, ids, tokenizer, sequence_length, batch_size, seed, mode):
    self.tokenizer, self.ids = tokenizer, ids
    self.sequence_length, self.batch_size, self.seed, self.mode = (
        sequence_length, batch_size, seed, mode)

  @property
  def vocab_size(self):
    return self.tokenizer.vocab_size

  def _example(self, rng):
    if self.mode == 'whole':
      return whole_sequence_example(self.ids, self.sequence_length, rng)
    return random_window(self.ids, self.sequence_length, rng)

  def __call__(self):
    if self.mode == 'sequential':
      source = FromSequence(_Windows(self.ids, self.sequence_length), repeat=True)
    else:
      source = Generate(self._example, seed=self.seed)
    return Serial(source, Map(lambda x: (x, x)), AddLossWeights(id_to_mask=0),
                  Batch(self.batch_size))


class _Windows:
  """Consecutive non-overlapping windows as a sequence (the last one zero-padded)."""

  def __init__(self, ids, length):
    self._ids, self._length = ids, length

  def __len__(self):
    return max(1, -(-len(self._ids) // self._length))

  def __getitem__(self, i):
    if not 0 <= i < len(self):
      raise IndexError(i)
    w = self._ids[i * self._length:(i + 1) * self._length]
    return np.pad(w, (0, self._length - len(w))).astype(np.int32)


def lm_inputs(text_source='crime_and_punishment', tokenizer='char', vocab_size=None,
              sequence_length=None, batch_size=8, split='train', seed=0, whole_novel=False,
              data_path=None, vocab_dir=None, eval_every=10, max_tokens=None):
  """Batches `(inputs, targets, weights)` for language modelling on a text (gin-configurable).

  Args:
    text_source: 'crime_and_punishment' or the path of a UTF-8 text file.
    tokenizer: 'char' or 'sentencepiece' (or a Tokenizer / saved tokenizer path).
    vocab_size: SentencePiece size; for 'char', an upper bound checked against the text.
    sequence_length: window length (default 512); with `whole_novel`, a power of two (default:
      the smallest one that holds the split's tokens).
    batch_size: examples per batch.
    split: 'train' (random windows of the training chapters), 'eval' (consecutive windows of
      the held-out chapters, the same on every run) or 'all' (random windows of everything).
    seed: data seed (non-negative); same seed, same batches.
    whole_novel: each example is the whole split as one sequence, padded to a power of two with
      a random amount of the padding on the left (the Trax Reformer colab setup). With a
      (power-of-two) sequence_length shorter than the split, as in a config shrunk for a CPU,
      the examples are windows of all of it instead: random windows for 'train' and 'all',
      consecutive windows for 'eval' (as without whole_novel).
    data_path: explicit location of the text (see `crime_and_punishment`).
    vocab_dir: where the tokenizer is loaded from / saved (the training output_dir).
    eval_every: every eval_every-th chapter is held out for 'eval'.
    max_tokens: keep only the first `max_tokens` tokens of the split (None: all of it); with
      `whole_novel` and max_tokens <= sequence_length, that much text is the one sequence.

  Returns:
    An `LMInputs`: call it with no arguments for a fresh resumable Pipeline of numpy batches,
    int32 (B, L) inputs and targets and float32 (B, L) weights; `.tokenizer` is the tokenizer.
  """
  if split not in ('train', 'eval', 'all'):
    raise ValueError(f"lm_inputs: split must be 'train', 'eval' or 'all', got {split!r}.")
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f'lm_inputs: seed must be a non-negative int, got {seed!r}.')
  text = load_text(text_source, data_path)
  tok = tokenizer_for(tokenizer, vocab_size, vocab_dir=vocab_dir, seed=0, text=text)
  if split == 'all':
    split_text = text
  else:
    train, eval_ = text_lib.split_chapters(text, eval_every)
    split_text = ''.join(train if split == 'train' else eval_)
  ids = tok.encode(split_text)
  if max_tokens is not None:
    if not isinstance(max_tokens, (int, np.integer)) or max_tokens < 1:
      raise ValueError(f'lm_inputs: max_tokens must be a positive int or None, got '
                       f'{max_tokens!r}.')
    ids = ids[:max_tokens]
  if whole_novel:
    needed = _next_power_of_two(len(ids))
    if sequence_length is None:
      sequence_length = needed
    elif sequence_length < 1 or sequence_length & (sequence_length - 1):
      raise ValueError(f'lm_inputs: whole_novel needs sequence_length to be a power of two '
                       f'(the {len(ids)} tokens of the {split} text fit in {needed}); got '
                       f'{sequence_length}.')
    if sequence_length >= len(ids):
      mode = 'whole'
    else:  # a shrunk whole-novel config: all of the text, one window at a time
      mode = 'sequential' if split == 'eval' else 'random'
  else:
    sequence_length = 512 if sequence_length is None else int(sequence_length)
    mode = 'sequential' if split == 'eval' else 'random'
  if sequence_length < 1 or batch_size < 1:
    raise ValueError(f'lm_inputs: sequence_length and batch_size must be positive, got '
                     f'{sequence_length} and {batch_size}.')
  return LMInputs(ids, tok, int(sequence_length), int(batch_size), int(seed), mode)
