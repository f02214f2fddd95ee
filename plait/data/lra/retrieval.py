"""LRA Retrieval: do two ACL Anthology (AAN) papers cite each other? Byte-level pairs, 2 classes.

Read from LRA's released TSV files (lra_release/tsv_data/new_aan_pairs.{train,eval,test}.tsv
for 'train', 'validation', 'test'), one pair per line, five tab-separated fields:

    label <TAB> id1 <TAB> id2 <TAB> text1 <TAB> text2

label is 0 or 1 (possibly written '1.0'); the texts are Python bytes literals (b'...') in
LRA's files, decoded here to the papers' bytes (plain text is taken as UTF-8). Byte b is
token b + 1 (vocab 257, 0 is padding); each text is cut to max_length bytes (LRA: 4000) and
zero-padded. The files are indexed by line on first use and read lazily (they are large).

    make = plait.data.lra.lra_retrieval_inputs(split='train', batch_size=32, data_dir=DIR)
    inputs, targets, weights = next(make())   # int32 (32, 2, 4000), int32 (32,), float32 (32,)
"""
import ast
import os

import numpy as np

from plait.data.lra.common import LRAInputs, check_int, check_split, example, pad_bytes

VOCAB_SIZE = 257
N_CLASSES = 2
MAX_LENGTH = 4000
FILES = {'train': 'new_aan_pairs.train.tsv', 'validation': 'new_aan_pairs.eval.tsv',
         'test': 'new_aan_pairs.test.tsv'}
PREPARE = ('download https://storage.googleapis.com/long-range-arena/lra_release.gz, '
           '`tar xzf lra_release.gz`, and pass data_dir=.../lra_release/lra_release/tsv_data '
           '(or copy those files to $PLAIT_DATA_DIR/lra/aan); see docs/lra.md, "Data".')


def default_dir():
  """`$PLAIT_DATA_DIR/lra/aan` when PLAIT_DATA_DIR is set, else None."""
  root = os.environ.get('PLAIT_DATA_DIR')
  return os.path.join(root, 'lra', 'aan') if root else None


def _line_starts(path, chunk_size=1 << 24):
  """int64 byte offsets of the non-empty lines of a file, and the file size."""
  starts, offset = [np.zeros(1, np.int64)], 0
  with open(path, 'rb') as f:
    while True:
      chunk = f.read(chunk_size)
      if not chunk:
        break
      newlines = np.flatnonzero(np.frombuffer(chunk, np.uint8) == ord('\n'))
      starts.append(newlines.astype(np.int64) + offset + 1)
      offset += len(chunk)
  starts = np.concatenate(starts)
  ends = np.append(starts[1:], offset)
  return starts[ends - starts > 1], ends[ends - starts > 1]  # drop empty lines (and the end)


def _text(field):
  """A TSV text field -> bytes: a Python bytes literal b'...' is decoded, else UTF-8."""
  if field[:2] in (b"b'", b'b"') and field[-1:] == field[1:2] and len(field) >= 3:
    try:
      return ast.literal_eval(field.decode('utf-8', 'surrogateescape'))
    except (ValueError, SyntaxError):
      pass
  return field


class TsvPairs:
  """Random access to the pairs of one AAN TSV file: item i is (tokens (2, L), label, 1.0)."""

  def __init__(self, path, max_length):
    self.path, self.max_length = path, max_length
    self._starts, self._ends = _line_starts(path)
    if not len(self._starts):
      raise ValueError(f'lra_retrieval_inputs: {path} has no lines.')

  def __len__(self):
    return len(self._starts)

  def fields(self, i):
    """The five raw fields (bytes) of line i."""
    with open(self.path, 'rb') as f:
      f.seek(int(self._starts[i]))
      line = f.read(int(self._ends[i] - self._starts[i])).rstrip(b'\r\n')
    fields = line.split(b'\t')
    if len(fields) != 5:
      raise ValueError(f'lra_retrieval_inputs: line {i + 1} of {self.path} has {len(fields)} '
                       'tab-separated fields; expected 5: label, id1, id2, text1, text2.')
    return fields

  def __getitem__(self, i):
    if not 0 <= i < len(self):
      raise IndexError(f'TsvPairs: index {i} out of range [0, {len(self)}).')
    label, _, _, text1, text2 = self.fields(i)
    try:
      value = float(label)
    except ValueError:
      value = -1.0
    if value not in (0.0, 1.0):
      raise ValueError(f'lra_retrieval_inputs: line {i + 1} of {self.path} has label '
                       f'{label[:20]!r}; expected 0 or 1.')
    tokens = np.stack([pad_bytes(_text(t), self.max_length) for t in (text1, text2)])
    return example(tokens, int(value))


def lra_retrieval_inputs(split='train', batch_size=32, seed=0, max_length=MAX_LENGTH,
                         data_dir=None):
  """Batches of LRA Retrieval, AAN document pairs (gin-configurable); needs LRA's TSV files.

  Args:
    split: 'train' (reshuffled every epoch), 'validation' (LRA's eval file) or 'test', the
      last two in a fixed order; every split repeats forever.
    batch_size: examples per batch.
    seed: non-negative seed of the training order.
    max_length: bytes kept per document, and the padded length (LRA: 4000).
    data_dir: the directory holding new_aan_pairs.*.tsv (None: $PLAIT_DATA_DIR/lra/aan).

  Returns:
    An `LRAInputs`: call it for a resumable Pipeline of (inputs int32 (B, 2, max_length),
    the two documents' byte ids 1..256 and 0 padding; targets int32 (B,) in {0, 1}; weights
    float32 (B,) ones).

  Raises:
    FileNotFoundError: the split's file is missing; the message says how to get it.
  """
  name = 'lra_retrieval_inputs'
  split = check_split(name, split)
  batch_size = check_int(name, 'batch_size', batch_size)
  seed = check_int(name, 'seed', seed, low=0)
  max_length = check_int(name, 'max_length', max_length)
  directory = os.fspath(data_dir) if data_dir is not None else default_dir()
  if directory is None:
    raise FileNotFoundError(f'{name}: no data_dir given and PLAIT_DATA_DIR is not set; '
                            + PREPARE)
  path = os.path.join(directory, FILES[split])
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{name}: {path} does not exist; ' + PREPARE)
  return LRAInputs('retrieval', TsvPairs(path, max_length), split, batch_size, seed,
                   VOCAB_SIZE, N_CLASSES, max_length)
