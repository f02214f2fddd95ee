"""Pipeline stages: Shuffle, Batch, padding/truncation, loss weights, bucketing, Map, Log.

Each stage is a small immutable description; `stage.open(upstream)` returns a resumable
`Stream` (see pipeline.py). Examples flowing through are numpy arrays or tuples/dicts of them.

    pipeline = Serial(FromSequence(pairs, shuffle=True, repeat=True),
                      TruncateToLength(128), PadToLength(128), AddLossWeights(), Batch(16))
"""
import numpy as np

from plait.data.pipeline import Stage, Stream


def _map_structure(fn, example):
  if isinstance(example, tuple):
    return tuple(_map_structure(fn, x) for x in example)
  if isinstance(example, list):
    return [_map_structure(fn, x) for x in example]
  if isinstance(example, dict):
    return {k: _map_structure(fn, v) for k, v in example.items()}
  return fn(example)


def _shapes(example):
  return _map_structure(lambda x: np.shape(x), example)


def _check_seed(name, seed):
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f'{name}: seed must be a non-negative int, got {seed!r}.')
  return int(seed)


class _PassStateStream(Stream):
  """A stream with no position of its own: its state is its upstream's state."""

  def __init__(self, upstream):
    self.upstream = upstream

  def get_state(self):
    return self.upstream.get_state()

  def set_state(self, state):
    self.upstream.set_state(state)


class _MapStream(_PassStateStream):

  def __init__(self, upstream, fn):
    super().__init__(upstream)
    self._fn = fn

  def __next__(self):
    return self._fn(next(self.upstream))


class Map(Stage):
  """Applies `fn` to every example (e.g. tokenization). `fn` must be deterministic."""

  def __init__(self, fn):
    self._fn = fn

  def open(self, upstream):
    return _MapStream(upstream, self._fn)

  def __repr__(self):
    return f'Map[{getattr(self._fn, "__name__", "fn")}]'


class _FilterStream(_PassStateStream):

  def __init__(self, upstream, predicate):
    super().__init__(upstream)
    self._predicate = predicate

  def __next__(self):
    while True:
      example = next(self.upstream)
      if self._predicate(example):
        return example


class Filter(Stage):
  """Keeps only the examples for which `predicate(example)` is true."""

  def __init__(self, predicate):
    self._predicate = predicate

  def open(self, upstream):
    return _FilterStream(upstream, self._predicate)


class _ReplayBuffer:
  """Buffered examples remembered by the upstream state *before* each was read.

  `get_state` stores only those positions; `restore` re-reads each example from upstream,
  so the state stays small (no example data) and restores exactly for deterministic upstreams.
  """

  def __init__(self, upstream):
    self.upstream = upstream

  def read(self):
    position = self.upstream.get_state()
    return position, next(self.upstream)

  def restore(self, positions, final_position):
    items = []
    for position in positions:
      self.upstream.set_state(position)
      items.append((position, next(self.upstream)))
    self.upstream.set_state(final_position)
    return items


class Shuffle(Stage):
  """Shuffles a stream within a buffer of `queue_size` examples (deterministic given `seed`).

  The buffer is filled first; then each output is a random buffered example, replaced by the
  next input. Output i is therefore one of the first `queue_size + i` inputs. Put it right after
  a cheap, deterministic source: its state holds one upstream position per buffered example.
  """

  def __init__(self, queue_size=1024, seed=0):
    if queue_size < 1:
      raise ValueError(f'Shuffle: queue_size must be >= 1, got {queue_size}.')
    self._queue_size, self._seed = int(queue_size), _check_seed('Shuffle', seed)

  def open(self, upstream):
    return _ShuffleStream(upstream, self._queue_size, self._seed)

  def __repr__(self):
    return f'Shuffle_{self._queue_size}'


class _ShuffleStream(Stream):

  def __init__(self, upstream, queue_size, seed):
    self.upstream, self._replay = upstream, _ReplayBuffer(upstream)
    self._queue_size, self._seed = queue_size, seed
    self._buffer, self._count, self._exhausted = [], 0, False

  def __next__(self):
    while not self._exhausted and len(self._buffer) < self._queue_size:
      try:
        self._buffer.append(self._replay.read())
      except StopIteration:
        self._exhausted = True
    if not self._buffer:
      raise StopIteration
    # A fresh generator per draw keyed by (seed, count): the state is just the count.
    j = int(np.random.default_rng([self._seed, self._count]).integers(len(self._buffer)))
    self._count += 1
    _, example = self._buffer[j]
    self._buffer[j] = self._buffer[-1]
    self._buffer.pop()
    return example

  def get_state(self):
    return {'upstream': self.upstream.get_state(), 'count': self._count,
            'exhausted': self._exhausted, 'buffer': [p for p, _ in self._buffer]}

  def set_state(self, state):
    self._buffer = self._replay.restore(state['buffer'], state['upstream'])
    self._count, self._exhausted = int(state['count']), bool(state['exhausted'])


def stack_examples(examples, name='Batch'):
  """Stacks a list of same-structured examples into one batch (numpy, new leading axis)."""
  first = examples[0]
  if isinstance(first, (tuple, list)):
    return type(first)(stack_examples([e[i] for e in examples], name) for i in range(len(first)))
  if isinstance(first, dict):
    return {k: stack_examples([e[k] for e in examples], name) for k in first}
  try:
    return np.stack([np.asarray(e) for e in examples])
  except ValueError:
    shapes = sorted({np.shape(e) for e in examples})
    raise ValueError(f'{name}: cannot stack examples of different shapes {shapes[:4]}; add '
                     'PadToLength (or BucketByLength) before batching.') from None


class Batch(Stage):
  """Groups `batch_size` consecutive examples into a batch (arrays stacked on a new axis 0).

  A last partial batch is dropped, so every batch has the same shape.
  """

  def __init__(self, batch_size):
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
      raise ValueError(f'Batch: batch_size must be a positive int, got {batch_size!r}.')
    self._batch_size = int(batch_size)

  def open(self, upstream):
    return _BatchStream(upstream, self._batch_size)

  def __repr__(self):
    return f'Batch_{self._batch_size}'


class _BatchStream(_PassStateStream):

  def __init__(self, upstream, batch_size):
    super().__init__(upstream)
    self._batch_size = batch_size

  def __next__(self):
    next_stacked = getattr(self.upstream, 'next_stacked', None)   # FromSequence: one gather?
    batch = next_stacked(self._batch_size) if next_stacked is not None else None
    if batch is not None:
      return batch
    examples = [next(self.upstream) for _ in range(self._batch_size)]
    return stack_examples(examples)


def _pad_array(x, length, pad_value, name):
  x = np.asarray(x)
  if x.ndim == 0:
    return x
  if x.shape[0] > length:
    raise ValueError(f'{name}: an example has length {x.shape[0]} > {length} (shape '
                     f'{x.shape}); add TruncateToLength({length}) before it.')
  widths = [(0, length - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
  return np.pad(x, widths, constant_values=pad_value)


class PadToLength(Stage):
  """Pads every array of an example along axis 0 to `length` with `pad_value`."""

  def __init__(self, length, pad_value=0):
    if length < 1:
      raise ValueError(f'PadToLength: length must be >= 1, got {length}.')
    self._length, self._pad_value = int(length), pad_value

  def open(self, upstream):
    return _MapStream(upstream, lambda ex: _map_structure(
        lambda x: _pad_array(x, self._length, self._pad_value, 'PadToLength'), ex))

  def __repr__(self):
    return f'PadToLength_{self._length}'


class TruncateToLength(Stage):
  """Cuts every array of an example along axis 0 to at most `length`."""

  def __init__(self, length):
    if length < 1:
      raise ValueError(f'TruncateToLength: length must be >= 1, got {length}.')
    self._length = int(length)

  def open(self, upstream):
    return _MapStream(upstream, lambda ex: _map_structure(
        lambda x: np.asarray(x)[:self._length] if np.ndim(x) else np.asarray(x), ex))

  def __repr__(self):
    return f'TruncateToLength_{self._length}'


def _pair(name, example):
  if not (isinstance(example, (tuple, list)) and len(example) == 2):
    raise ValueError(f'{name}: expects (inputs, targets) examples, got '
                     f'{type(example).__name__} with shapes {_shapes(example)}.')
  return np.asarray(example[0]), np.asarray(example[1])


class AddLossWeights(Stage):
  """(inputs, targets) -> (inputs, targets, weights): weights are 0.0 where targets == id_to_mask.

  Works on single examples and on batches. Weights are float32.
  """

  def __init__(self, id_to_mask=0):
    self._id_to_mask = id_to_mask

  def _add(self, example):
    inputs, targets = _pair('AddLossWeights', example)
    return inputs, targets, (targets != self._id_to_mask).astype(np.float32)

  def open(self, upstream):
    return _MapStream(upstream, self._add)


class ConcatenateToLMInput(Stage):
  """(inputs, targets) -> (seq, seq, weights) with seq = inputs ++ targets, for decoder-only LMs.

  Weights are 0 on the inputs part (the prompt is not scored) and 1 on the targets part; with
  `pad_to_length` the sequence is zero-padded (weight 0) to that length.
  """

  def __init__(self, pad_to_length=None):
    self._pad_to_length = pad_to_length

  def _concat(self, example):
    inputs, targets = _pair('ConcatenateToLMInput', example)
    if inputs.ndim != 1 or targets.ndim != 1:
      raise ValueError(f'ConcatenateToLMInput: expects 1-D token examples (before Batch), got '
                       f'shapes {inputs.shape} and {targets.shape}.')
    seq = np.concatenate([inputs, targets]).astype(np.int32)
    weights = np.concatenate([np.zeros(len(inputs)), np.ones(len(targets))]).astype(np.float32)
    if self._pad_to_length is not None:
      seq = _pad_array(seq, self._pad_to_length, 0, 'ConcatenateToLMInput')
      weights = _pad_array(weights, self._pad_to_length, 0, 'ConcatenateToLMInput')
    return seq, seq, weights

  def open(self, upstream):
    return _MapStream(upstream, self._concat)


def _first_length(example):
  while isinstance(example, (tuple, list, dict)):
    example = next(iter(example.values())) if isinstance(example, dict) else example[0]
  return np.shape(example)[0]


class BucketByLength(Stage):
  """Batches examples of similar length together, padding each batch to its bucket's boundary.

  An example of length n (axis 0 of its first array) goes to the first bucket i with
  n <= boundaries[i], or to the last bucket; a bucket emits a batch once it holds
  `batch_sizes[i]` examples. Batches of the last bucket are padded to their longest example.

  Args:
    boundaries: increasing lengths, e.g. [64, 128, 256].
    batch_sizes: one more entry than `boundaries`, e.g. [32, 16, 8, 4].
    pad_value: padding id.
  """

  def __init__(self, boundaries, batch_sizes, pad_value=0):
    boundaries, batch_sizes = list(boundaries), list(batch_sizes)
    if len(batch_sizes) != len(boundaries) + 1:
      raise ValueError(f'BucketByLength: need len(batch_sizes) == len(boundaries) + 1, got '
                       f'{len(batch_sizes)} batch sizes for {len(boundaries)} boundaries.')
    if boundaries != sorted(set(boundaries)):
      raise ValueError(f'BucketByLength: boundaries must increase, got {boundaries}.')
    self._boundaries, self._batch_sizes, self._pad_value = boundaries, batch_sizes, pad_value

  def open(self, upstream):
    return _BucketStream(upstream, self)


class _BucketStream(Stream):

  def __init__(self, upstream, spec):
    self.upstream, self._spec, self._replay = upstream, spec, _ReplayBuffer(upstream)
    self._buckets = [[] for _ in spec._batch_sizes]

  def _bucket(self, example):
    n = _first_length(example)
    return next((i for i, b in enumerate(self._spec._boundaries) if n <= b),
                len(self._spec._boundaries))

  def __next__(self):
    while True:
      position, example = self._replay.read()
      i = self._bucket(example)
      self._buckets[i].append((position, example))
      if len(self._buckets[i]) == self._spec._batch_sizes[i]:
        examples = [e for _, e in self._buckets[i]]
        self._buckets[i] = []
        if i < len(self._spec._boundaries):
          length = self._spec._boundaries[i]
        else:
          length = max(_first_length(e) for e in examples)
        padded = [_map_structure(lambda x, n=length: _pad_array(
            x, n, self._spec._pad_value, 'BucketByLength'), e) for e in examples]
        return stack_examples(padded, 'BucketByLength')

  def get_state(self):
    return {'upstream': self.upstream.get_state(),
            'buckets': [[p for p, _ in bucket] for bucket in self._buckets]}

  def set_state(self, state):
    final = state['upstream']
    self._buckets = [self._replay.restore(positions, final) for positions in state['buckets']]


class Log(Stage):
  """Prints the structure (shapes and dtypes, or values) of every `every`-th example."""

  def __init__(self, every=1, only_shapes=True, log_fn=print):
    self._every, self._only_shapes, self._log_fn = max(1, int(every)), only_shapes, log_fn

  def open(self, upstream):
    return _LogStream(upstream, self)


class _LogStream(Stream):

  def __init__(self, upstream, spec):
    self.upstream, self._spec, self._count = upstream, spec, 0

  def __next__(self):
    example = next(self.upstream)
    if self._count % self._spec._every == 0:
      if self._spec._only_shapes:
        shown = _map_structure(lambda x: f'{np.asarray(x).dtype}{list(np.shape(x))}', example)
      else:
        shown = example
      self._spec._log_fn(f'Log[{self._count}]: {shown}')
    self._count += 1
    return example

  def get_state(self):
    return {'upstream': self.upstream.get_state(), 'count': self._count}

  def set_state(self, state):
    self.upstream.set_state(state['upstream'])
    self._count = int(state['count'])
