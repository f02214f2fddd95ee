"""What every Long Range Arena source shares: splits, argument checks and the batch pipeline.

Every task is a random-access sequence of examples `(inputs, target, weight)` (int32 tokens,
an int32 class id, float32 1.0). `LRAInputs` turns one into the zero-argument callable the
trainer takes; each call gives a fresh resumable Pipeline of batches

    inputs int32 (B, L) (Retrieval: (B, 2, L)), targets int32 (B,), weights float32 (B,).

Every split repeats forever: 'train' in a fresh seeded permutation per epoch, 'validation' and
'test' in their fixed order, so each evaluation (n_eval_batches from a fresh pipeline) scores
the same examples. The variable-length tasks' training batches can be bucketed by length
(`bucket_lengths`, see `check_bucket_lengths`): L is then the batch's bucket.
"""
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
import sys
import zipfile

import numpy as np

from plait.data.pipeline import FromSequence, Serial
from plait.data.stages import Batch, BucketByLength, Map

SPLITS = ('train', 'validation', 'test')


def check_split(name, split):
  """`split` if it is 'train', 'validation' or 'test'; else a ValueError naming `name`."""
  if split not in SPLITS:
    raise ValueError(f'{name}: split must be one of {SPLITS}, got {split!r}.')
  return split


def check_int(name, arg, value, low=1):
  """`int(value)` if it is an int >= low; else a ValueError naming the function and argument."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ValueError(f'{name}: {arg} must be an int >= {low}, got {value!r}.')
  return int(value)


def example(tokens, label):
  """One example `(inputs, target, weight)`: int32 tokens, int32 scalar label, float32 1.0."""
  return (np.asarray(tokens, np.int32), np.asarray(label, np.int32),
          np.asarray(1.0, np.float32))


class Uniforms:
  """Uniform [0, 1) Python floats from a numpy Generator, drawn a block at a time.

  Pure-Python generators (ListOps trees, Pathfinder walks) take one number at a time; a Python
  float from a list is far cheaper than a scalar numpy draw. Same generator, same numbers.
  """

  def __init__(self, rng, block=1024):
    self._rng, self._block, self._buffer = rng, block, iter(())

  def __call__(self):
    value = next(self._buffer, None)
    if value is None:
      self._buffer = iter(self._rng.random(self._block).tolist())
      value = next(self._buffer)
    return value


def pad_bytes(data, max_length):
  """Bytes -> int32 (max_length,) ids b + 1, cut to max_length, zero-padded (0 = padding)."""
  ids = np.frombuffer(bytes(data)[:max_length], np.uint8).astype(np.int32) + 1
  return np.pad(ids, (0, max_length - len(ids)))


def as_bytes(text):
  """UTF-8 bytes of a str; bytes (and numpy bytes scalars) unchanged."""
  if isinstance(text, np.ndarray):
    text = text.item()
  return text.encode('utf-8') if isinstance(text, str) else bytes(text)


def check_bucket_lengths(name, split, bucket_lengths, max_length):
  """`bucket_lengths` as a tuple of ints (None stays None); else a ValueError naming `name`.

  Bucketing pads each training batch to the first of these lengths that holds all its
  examples' tokens (trailing zeros, the padding, are not tokens) instead of to max_length, and
  batches together examples that fall in the same bucket. So the lengths must increase and
  end at max_length (every example fits; every batch has one of these lengths, so a jitted
  step compiles once per length). Training only: a held-out split keeps its fixed order and
  max_length, so every evaluation scores the same examples.
  """
  if bucket_lengths is None:
    return None
  lengths = tuple(bucket_lengths) if isinstance(bucket_lengths, (list, tuple)) else None
  if (not lengths or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1
                         for n in lengths)
      or list(lengths) != sorted(set(lengths)) or lengths[-1] != max_length):
    raise ValueError(f'{name}: bucket_lengths must be increasing positive ints ending at '
                     f'max_length={max_length}, e.g. (768, 1024, 1536, {max_length}); got '
                     f'{bucket_lengths!r}.')
  if split != 'train':
    raise ValueError(f'{name}: bucket_lengths={lengths} is for the training split only; the '
                     f'{split!r} split keeps its fixed order so every evaluation scores the same '
                     f'examples. In gin, bind it for training and set '
                     f'eval/{name}.bucket_lengths = None.')
  return tuple(int(n) for n in lengths)


def strip_padding(example):
  """An example `(tokens, ...)` with the trailing padding (zeros) of its 1-D tokens cut off."""
  tokens = example[0]
  real = np.flatnonzero(tokens)
  return (tokens[:real[-1] + 1 if real.size else 0],) + tuple(example[1:])


class Mapped:
  """A random-access sequence `fn(data[i])` (data: anything with len() and indexing)."""

  def __init__(self, data, fn):
    self.data, self.fn = data, fn

  def __len__(self):
    return len(self.data)

  def __getitem__(self, i):
    return self.fn(self.data[i])


_TFDS_PREPARE = ('prepare it once (needs internet, may need TensorFlow for this step only): '
                 'tfds build {name} --file_format=array_record --data_dir=DIR, then pass '
                 'data_dir=DIR (see docs/lra.md, "Data").')


def open_tfds(caller, name, split, data_dir):
  """The tfds random-access data source of a prepared array_record split, or FileNotFoundError.

  data_dir None is TFDS's default ($TFDS_DATA_DIR, else ~/tensorflow_datasets).
  """
  from plait.data import tfds_source  # pylint: disable=import-outside-toplevel
  try:
    return tfds_source.TFDS(name, split=split, data_dir=data_dir).data_source()
  except (ValueError, KeyError, OSError, AssertionError, NotImplementedError, ImportError) as e:
    where = data_dir or "TFDS's default data_dir ($TFDS_DATA_DIR, else ~/tensorflow_datasets)"
    raise FileNotFoundError(f'{caller}: TFDS {name!r} split {split!r} is not prepared in '
                            f'array_record format under {where}; '
                            + _TFDS_PREPARE.format(name=name)
                            + f' [{type(e).__name__}: {str(e).splitlines()[0]}]') from None


def _generate_range(task):
  examples, start, stop = task
  made = [examples.generate(i) for i in range(start, stop)]
  return (np.stack([tokens for tokens, _ in made]).astype(np.uint8),
          np.array([label for _, label in made], np.int32))


class GeneratedExamples:
  """A generated split (ListOps, Pathfinder): item i is a pure function of i, memoized once made.

  Subclasses set `n_examples` and `length` and define `generate(i) -> (tokens, label)`, tokens
  a 1-D array of `length` ids < 256. Each example made is kept (uint8) so every epoch after the
  first, and every evaluation after the first, reads memory: n_examples x length bytes
  (Pathfinder 32x32: 164 MB for the training split), touched only as filled. `fill(workers)`
  makes them all up front in parallel.
  """
  n_examples = length = None
  _memo = None  # (tokens uint8 (n, length), labels int32 (n,), done bool (n,)), made on first use

  def __len__(self):
    return self.n_examples

  def generate(self, i):
    raise NotImplementedError

  def _arrays(self):
    if self._memo is None:
      n = self.n_examples
      self._memo = (np.zeros((n, self.length), np.uint8), np.zeros((n,), np.int32),
                    np.zeros((n,), bool))
    return self._memo

  def __getitem__(self, i):
    if not 0 <= i < self.n_examples:
      raise IndexError(f'{type(self).__name__}: index {i} out of range [0, {self.n_examples}).')
    tokens, labels, done = self._arrays()
    if not done[i]:
      tokens[i], labels[i] = self.generate(i)
      done[i] = True
    return example(tokens[i], labels[i])

  def stacked(self, indices):
    """The examples at `indices` as one batch: int32 (n, length), int32 (n,), float32 (n,)
    ones, equal to stacking `self[i]` for each (what FromSequence's batches read)."""
    indices = np.asarray(indices)
    tokens, labels, done = self._arrays()
    for i in indices[~done[indices]]:
      self[int(i)]
    return (tokens[indices].astype(np.int32), labels[indices].astype(np.int32),
            np.ones(indices.shape, np.float32))

  def fill(self, workers, chunk=256):
    """Makes every example not made yet, with `workers` processes (1: in this one)."""
    tokens, labels, done = self._arrays()
    starts = [a for a in range(0, self.n_examples, chunk) if not done[a:a + chunk].all()]
    if workers <= 1:
      for i in np.flatnonzero(~done):
        self[int(i)]
      return self
    tasks = [(self, a, min(a + chunk, self.n_examples)) for a in starts]
    # spawn, not fork: the parent may run JAX threads, which a fork would copy mid-flight.
    # An executor, not multiprocessing.Pool: a worker that dies (e.g. a script without the
    # main guard, which spawn imports again) raises BrokenProcessPool instead of being
    # replaced forever (see make_split).
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('spawn')) as pool:
      for (_, a, b), (made, made_labels) in zip(tasks, pool.map(_generate_range, tasks)):
        tokens[a:b], labels[a:b], done[a:b] = made, made_labels, True
    return self

  def cache_name(self):
    """A file name (no extension) naming everything that makes this split's examples."""
    raise NotImplementedError

  def fill_cached(self, cache_dir, workers):
    """Reads the whole split from `cache_dir` if it was saved there, else makes it (with
    max(workers, 1) processes) and saves it there, compressed (Pathfinder 32x32: ~39 MB for
    all three splits). A file that cannot be read, has the wrong shape, or holds examples the
    generator no longer makes (checked on three of them) is made again, with a warning."""
    path = os.path.join(cache_dir, self.cache_name() + '.npz')
    if os.path.exists(path) and self._load(path):
      return self
    self.fill(max(1, workers))
    tokens, labels, _ = self._arrays()
    os.makedirs(cache_dir, exist_ok=True)
    partial = f'{path}.partial-{os.getpid()}'
    with open(partial, 'wb') as f:   # np.savez would add '.npz' to a name
      np.savez_compressed(f, tokens=tokens, labels=labels)
    os.replace(partial, path)   # a reader never sees half a file
    return self

  def _load(self, path):
    """Fills the memo from a saved split; False (with a warning) if the file will not do."""
    try:
      with np.load(path) as saved:
        tokens, labels = saved['tokens'], saved['labels']
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
      problem = f'cannot be read ({type(e).__name__}: {e})'
    else:
      n = self.n_examples
      if tokens.shape != (n, self.length) or tokens.dtype != np.uint8 or labels.shape != (n,):
        problem = (f'holds tokens {tokens.dtype}{list(tokens.shape)} and labels '
                   f'{list(labels.shape)}, not uint8[{n}, {self.length}] and [{n}]')
      elif not all(_same(self.generate(i), tokens[i], labels[i]) for i in {0, n // 2, n - 1}):
        problem = 'holds examples the generator no longer makes'
      else:
        self._memo = (tokens, labels.astype(np.int32), np.ones((n,), bool))
        return True
    print(f'plait.data.lra: {path} {problem}; making the split again and replacing it.',
          file=sys.stderr, flush=True)
    return False

  def __getstate__(self):  # worker processes get the recipe, not the memo
    state = dict(self.__dict__)
    state.pop('_memo', None)
    return state


def _same(made, tokens, label):
  return np.array_equal(np.asarray(made[0], np.uint8), tokens) and int(made[1]) == int(label)


def make_split(caller, examples, workers, cache_dir):
  """The generated split's examples, made up front as the arguments ask (see `fill_cached`);
  a RuntimeError naming `caller` if a worker process dies."""
  try:
    if cache_dir is not None:
      return examples.fill_cached(os.fspath(cache_dir), workers)
    return examples.fill(workers) if workers else examples
  except BrokenProcessPool:
    raise RuntimeError(
        f'{caller}: making the {examples.split} split with workers={workers} failed: a worker '
        'process died. Workers are started by spawn, which imports the main script again, '
        "so a script must make the split under `if __name__ == '__main__':`; otherwise a "
        'worker ran out of memory. Or pass workers=0 (examples made as they are read).'
    ) from None


class LRAInputs:
  """A zero-argument callable returning a fresh resumable batch Pipeline over one LRA split.

  Attributes (for models and benchmarks): task, split, vocab_size, n_classes, max_length
  (tokens per example, per document for Retrieval), batch_size, seed, bucket_lengths (None, or
  the lengths training batches are padded to, from `check_bucket_lengths`; 1-D tokens only),
  and `examples`, the random-access sequence of single examples.
  """

  def __init__(self, task, examples, split, batch_size, seed, vocab_size, n_classes, max_length,
               bucket_lengths=None):
    self.task, self.examples, self.split = task, examples, split
    self.batch_size, self.seed, self.bucket_lengths = batch_size, seed, bucket_lengths
    self.vocab_size, self.n_classes, self.max_length = vocab_size, n_classes, max_length

  def __call__(self):
    source = FromSequence(self.examples, shuffle=self.split == 'train', seed=self.seed,
                          repeat=True)
    if self.bucket_lengths is None:
      return Serial(source, Batch(self.batch_size))
    # Every example is shorter than max_length, the last boundary, so BucketByLength's
    # overflow bucket (padded to its longest example) is never used: every batch has one of
    # bucket_lengths' shapes.
    return Serial(source, Map(strip_padding),
                  BucketByLength(self.bucket_lengths, [self.batch_size] * (len(
                      self.bucket_lengths) + 1)))

  def __repr__(self):
    buckets = '' if self.bucket_lengths is None else f', buckets {list(self.bucket_lengths)}'
    return (f'LRAInputs[{self.task}:{self.split}, {len(self.examples)} examples, '
            f'batch {self.batch_size}, seed {self.seed}{buckets}]')
