"""Resumable streams, sources and stages, and `Serial` which chains them.

A pipeline is a source followed by stages (Trax style):

    pipeline = plait.data.Serial(
        plait.data.FromSequence(examples, shuffle=True, seed=0, repeat=True),
        plait.data.Shuffle(queue_size=128, seed=1),
        plait.data.Batch(8))
    batch = next(pipeline)
    saved = pipeline.get_state()   # JSON-serializable; the training loop checkpoints it
    ...
    fresh = plait.data.Serial(...same...)
    fresh.set_state(saved)         # continues exactly where `pipeline` was

Why positions rather than data: every stream's state describes *where* it is (indices, counts,
and for buffering stages the upstream positions of the buffered examples), never the examples
themselves, so states stay small and JSON-friendly. Restoring a buffering stage re-reads its
buffered examples from upstream, which requires the upstream to be deterministic (all sources
here are, given their seed).
"""
import numpy as np


def _seed(name, seed):
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f'{name}: seed must be a non-negative int, got {seed!r}.')
  return int(seed)


class Stream:
  """An iterator whose position can be saved with `get_state()` and restored with `set_state()`."""

  def __iter__(self):
    return self

  def __next__(self):
    raise NotImplementedError

  def get_state(self):
    """A JSON-serializable description of the position (what `set_state` accepts)."""
    raise NotImplementedError

  def set_state(self, state):
    raise NotImplementedError


class Source:
  """Starts a pipeline: `source.open()` returns a fresh `Stream` at the beginning."""

  def open(self):
    raise NotImplementedError


class Stage:
  """A pipeline step: `stage.open(upstream_stream)` returns the downstream `Stream`.

  Calling a stage on any iterable (`stage(iterable)`) also works, as with Trax's
  generator-to-generator functions; the result is resumable only if the input is a `Stream`.
  """

  def open(self, upstream):
    raise NotImplementedError

  def __call__(self, upstream):
    return self.open(as_source(upstream).open())

  def __repr__(self):
    return type(self).__name__


class _IterableStream(Stream):
  """Wraps a plain iterable; its state is the count of items drawn (replayed on restore)."""

  def __init__(self, factory, name):
    self._factory, self._name = factory, name
    self._it, self._count = iter(factory()), 0

  def __next__(self):
    item = next(self._it)
    self._count += 1
    return item

  def get_state(self):
    return {'count': self._count}

  def set_state(self, state):
    target = int(state['count'])
    if target < self._count:
      self._it, self._count = iter(self._factory()), 0
    # O(n) fast-forward: exact only if the iterable yields the same items every time.
    while self._count < target:
      try:
        next(self)
      except StopIteration:
        raise ValueError(f'{self._name}: cannot restore position {target}: the iterable ended '
                         f'after {self._count} items.') from None


class _IterableSource(Source):

  def __init__(self, factory, name):
    self._factory, self._name = factory, name

  def open(self):
    return _IterableStream(self._factory, self._name)


def as_source(data):
  """Turns a `Source`, a zero-arg callable returning an iterable, or an iterable into a Source.

  Plain iterables are resumable by replay (state = items drawn); a one-shot iterator (e.g. a
  generator object) can only be opened once.
  """
  if isinstance(data, Source):
    return data
  if isinstance(data, Stage):
    raise TypeError(f'{data!r} is a Stage, not a source: the first argument of Serial must be a '
                    'source (e.g. FromSequence, TFDS, or a list / callable returning an iterator).')
  if isinstance(data, Stream):
    return _OpenedSource(data)
  if callable(data) and not hasattr(data, '__iter__'):
    return _IterableSource(data, getattr(data, '__name__', 'source'))
  if hasattr(data, '__next__'):  # a one-shot iterator
    return _OneShotSource(data)
  if hasattr(data, '__iter__'):
    return _IterableSource(lambda: data, type(data).__name__)
  raise TypeError(f'Cannot use {type(data).__name__} as a data source: pass a Source, an '
                  'iterable, or a zero-argument callable returning an iterator.')


class _OpenedSource(Source):

  def __init__(self, stream):
    self._stream = stream

  def open(self):
    return self._stream


class _OneShotSource(Source):

  def __init__(self, iterator):
    self._iterator, self._opened = iterator, False

  def open(self):
    if self._opened:
      raise ValueError('This source is a one-shot iterator and was already used; pass a '
                       'zero-argument callable returning a fresh iterator instead.')
    self._opened = True
    return _IterableStream(lambda: self._iterator, type(self._iterator).__name__)


class Pipeline(Stream):
  """The stream made by `Serial(source, *stages)`: an iterator with get_state/set_state."""

  _VERSION = 1

  def __init__(self, source, stages):
    self._source, self._stages = source, tuple(stages)
    stream = source.open()
    for stage in self._stages:
      stream = stage.open(stream)
    self._stream = stream

  def __next__(self):
    return next(self._stream)

  def get_state(self):
    return {'plait_data_pipeline': self._VERSION, 'stages': len(self._stages),
            'stream': self._stream.get_state()}

  def set_state(self, state):
    if not isinstance(state, dict) or state.get('plait_data_pipeline') != self._VERSION:
      raise ValueError(f'Pipeline.set_state: expected a state from Pipeline.get_state(), got '
                       f'{str(state)[:200]}.')
    if state['stages'] != len(self._stages):
      raise ValueError(f'Pipeline.set_state: the state is for a pipeline of {state["stages"]} '
                       f'stages but this one has {len(self._stages)}; build the same pipeline '
                       'as the run that saved it.')
    self._stream.set_state(state['stream'])

  def close(self):
    """Stops background threads (Prefetch) if any."""
    stream = self._stream
    while stream is not None:
      if hasattr(stream, 'close'):
        stream.close()
      stream = getattr(stream, 'upstream', None)

  def __repr__(self):
    inner = ', '.join([type(self._source).__name__] + [repr(s) for s in self._stages])
    return f'Pipeline[{inner}]'


class _SerialStage(Stage):
  """Several stages applied in order (what `Serial` returns when given no source)."""

  def __init__(self, stages):
    self._stages = tuple(stages)

  def open(self, upstream):
    for stage in self._stages:
      upstream = stage.open(upstream)
    return upstream

  def __repr__(self):
    return f'Serial[{", ".join(repr(s) for s in self._stages)}]'


def Serial(*parts):  # pylint: disable=invalid-name
  """Chains a source and stages into a resumable `Pipeline`, or stages into one `Stage`.

  Args:
    *parts: a source (a `Source`, a list, an iterable, or a zero-arg callable returning an
      iterator) followed by `Stage`s; or only `Stage`s, to build a reusable composite stage.

  Returns:
    A `Pipeline` (an iterator with `get_state()`/`set_state()`) if the first part is a
    source, else a `Stage`.

  Example:
    >>> p = Serial([np.arange(3)] * 4, Batch(2))
    >>> next(p).shape
    (2, 3)
  """
  if not parts:
    raise ValueError('Serial: give a source and/or stages, e.g. Serial(FromSequence(x), Batch(8)).')
  for i, part in enumerate(parts[1:], start=1):
    if not isinstance(part, Stage):
      raise TypeError(f'Serial: part {i} ({type(part).__name__}) is not a Stage; only the first '
                      'part may be a source.')
  if isinstance(parts[0], Stage):
    return _SerialStage(parts)
  return Pipeline(as_source(parts[0]), parts[1:])


class FromSequence(Source):
  """A source over a random-access sequence (list, array, tfds data source), optionally shuffled.

  Each epoch visits every index once; with `shuffle=True` in a permutation drawn from
  `(seed, epoch)`. State: `{'epoch', 'index'}`, restored in O(1). Data with a
  `stacked(indices)` method (the batch of those items, as `stack_examples` would stack them)
  is read a batch at a time by `Batch`.

  Args:
    data: anything with `len()` and integer indexing.
    shuffle: visit indices in a seeded random order (fresh per epoch).
    seed: int seed for the permutations.
    repeat: start a new epoch at the end instead of stopping.
    transform: optional function applied to each item as it is read.
  """

  def __init__(self, data, shuffle=False, seed=0, repeat=False, transform=None):
    if not (hasattr(data, '__len__') and hasattr(data, '__getitem__')):
      raise TypeError(f'FromSequence: data must support len() and indexing, got '
                      f'{type(data).__name__}.')
    self._data, self._shuffle, self._seed = data, shuffle, _seed('FromSequence', seed)
    self._repeat, self._transform = repeat, transform

  def __len__(self):
    return len(self._data)

  def open(self):
    return _SequenceStream(self)


class _SequenceStream(Stream):

  def __init__(self, source):
    self._src = source
    self._epoch, self._index, self._order_epoch, self._order = 0, 0, None, None
    if len(source) == 0:
      raise ValueError('FromSequence: the data is empty.')

  def _index_order(self):
    if self._order_epoch != self._epoch:
      n = len(self._src)
      self._order = (np.random.default_rng([self._src._seed, self._epoch]).permutation(n)
                     if self._src._shuffle else None)
      self._order_epoch = self._epoch
    return self._order

  def _turn_epoch_if_done(self):
    """At the end of an epoch: the next one (StopIteration if the source does not repeat)."""
    if self._index >= len(self._src):
      if not self._src._repeat:
        raise StopIteration
      self._epoch, self._index = self._epoch + 1, 0

  def __next__(self):
    self._turn_epoch_if_done()
    order = self._index_order()
    i = int(order[self._index]) if order is not None else self._index
    self._index += 1
    item = self._src._data[i]
    return self._src._transform(item) if self._src._transform else item

  def next_stacked(self, n):
    """The next `n` items as one batch from the data's `stacked(indices)` (one gather where
    `Batch` would read and stack n items one by one: 5 of a Pathfinder step's 16 ms on the
    H200's host), or None, reading nothing, when the data has no `stacked` or a transform is
    set. Same items, order, epochs and state as n `next()` calls."""
    stacked = getattr(self._src._data, 'stacked', None)
    if stacked is None or self._src._transform is not None:
      return None
    chunks, wanted = [], n
    while wanted:
      self._turn_epoch_if_done()
      order = self._index_order()
      stop = min(len(self._src), self._index + wanted)
      chunks.append(order[self._index:stop] if order is not None
                    else np.arange(self._index, stop))
      wanted -= stop - self._index
      self._index = stop
    return stacked(np.concatenate(chunks))

  def get_state(self):
    return {'epoch': self._epoch, 'index': self._index}

  def set_state(self, state):
    self._epoch, self._index = int(state['epoch']), int(state['index'])


class Generate(Source):
  """An endless (or `n`-long) source whose i-th item is `fn(np.random.default_rng([seed, i]))`.

  Used for random crops and random text windows: item i depends only on `(seed, i)`, so the
  state is just `{'index': i}` and restoring is O(1).
  """

  def __init__(self, fn, seed=0, n=None):
    self._fn, self._seed, self._n = fn, _seed('Generate', seed), n

  def open(self):
    return _GenerateStream(self)


class _GenerateStream(Stream):

  def __init__(self, source):
    self._src, self._index = source, 0

  def __next__(self):
    if self._src._n is not None and self._index >= self._src._n:
      raise StopIteration
    item = self._src._fn(np.random.default_rng([self._src._seed, self._index]))
    self._index += 1
    return item

  def get_state(self):
    return {'index': self._index}

  def set_state(self, state):
    self._index = int(state['index'])
