"""A batch stream whose position can be saved in a checkpoint and restored.

The data contract (what `plait.data` pipelines implement):

* A stream is an iterator of batches, or a zero-argument callable returning one.
* If the iterator has `get_state() -> dict` (JSON-serializable) and
  `set_state(dict)`, the checkpoint stores `get_state()` and resume calls
  `set_state()`: exact and O(1).
* Otherwise the checkpoint stores how many batches were consumed and resume
  skips that many batches of a fresh stream. This is exact only if the
  iterator is deterministic (same batches in the same order on every run).
"""
import json


class DataError(ValueError):
  """The data stream ran out, or its state cannot be saved or restored."""


class BatchStream:
  """Wraps a batch iterator: `peek` without consuming; `position`/`restore` for checkpoints.

  Args:
    data: an iterator (or iterable) of batches, or a zero-argument callable returning one.
    name: used in error messages, e.g. 'train'.
  """

  def __init__(self, data, name='train'):
    self._name = name
    is_iterator = hasattr(data, '__next__') or hasattr(data, '__iter__')
    self._factory = data if callable(data) and not is_iterator else None
    self._open(data() if self._factory else data)

  def _open(self, source):
    if not (hasattr(source, '__next__') or hasattr(source, '__iter__')):
      raise DataError(f'{self._name} data must be an iterator of batches or a zero-argument '
                      f'callable returning one; got {type(source).__name__}.')
    self._source = source
    self._iter = source if hasattr(source, '__next__') else iter(source)
    self._stateful = (callable(getattr(source, 'get_state', None))
                      and callable(getattr(source, 'set_state', None)))
    self._buffer = []  # at most one peeked batch
    self._state_before_peek = None
    self._count = 0
    self._pulled = 0  # batches this iterator gave (0 at the end: the data set is empty)

  @property
  def stateful(self):
    """True if the iterator saves its own position (get_state/set_state)."""
    return self._stateful

  @property
  def count(self):
    """Batches handed out by `next` since the start of training."""
    return self._count

  def reset(self):
    """Starts again from a fresh iterator (only for streams given as callables)."""
    if self._factory is None:
      raise DataError(f'{self._name} data is an iterator, so it cannot be restarted; '
                      'pass a zero-argument callable instead.')
    self._open(self._factory())

  @property
  def restartable(self):
    return self._factory is not None

  def peek(self):
    """The next batch, without consuming it."""
    if not self._buffer:
      if self._stateful:
        self._state_before_peek = self._source.get_state()
      self._buffer.append(self._pull())
    return self._buffer[0]

  def __iter__(self):
    return self

  def __next__(self):
    batch = self._buffer.pop() if self._buffer else self._pull()
    self._count += 1
    return batch

  def _pull(self):
    try:
      batch = next(self._iter)
      self._pulled += 1
      return batch
    except StopIteration:
      if not self._pulled:
        resumed = f' (resuming at batch {self._count})' if self._count else ''
        raise DataError(f'{self._name} data is empty: it gave no batches{resumed}. Check the '
                        'data path, split and filters (e.g. a sequence_length longer than '
                        'every example).') from None
      raise DataError(f'{self._name} data ran out after {self._count} batches; training '
                      'streams must be infinite (repeat the data set).') from None

  def position(self):
    """A JSON-serializable description of where the stream is."""
    pos = {'batches': self._count}
    if self._stateful:
      state = self._state_before_peek if self._buffer else self._source.get_state()
      try:
        json.dumps(state)
      except (TypeError, ValueError) as e:
        raise DataError(f'{self._name} data: get_state() must return JSON-serializable data '
                        f'for checkpoints; got {type(state).__name__}: {e}') from e
      pos['state'] = state
    return pos

  def restore(self, position):
    """Moves a fresh stream to `position` (from `position()` of an earlier run)."""
    if self._count:
      raise DataError(f'{self._name} data: can only restore a stream that has not been used yet.')
    n = int(position.get('batches', 0))
    if self._stateful and 'state' in position:
      self._buffer, self._state_before_peek = [], None
      self._source.set_state(position['state'])
    else:
      # Fast-forward: only exact for deterministic iterators (see module docstring).
      # A peeked batch is batch 0 of the fresh stream, so it counts as skipped.
      start = 0
      if self._buffer and n:
        self._buffer, self._state_before_peek, start = [], None, 1
      for i in range(start, n):
        try:
          next(self._iter)
        except StopIteration:
          raise DataError(f'{self._name} data ran out after {i} batches while skipping to '
                          f'batch {n} to resume; resuming needs the same (deterministic) '
                          'data as the interrupted run.') from None
    self._count = n
