"""Prefetch: reads the upstream in a background thread so data loading overlaps training."""
import queue
import threading

from plait.data.pipeline import Stage, Stream

_END = object()


class Prefetch(Stage):
  """Runs the upstream in a background thread, keeping up to `buffer_size` items ready.

  Order is preserved and an exception raised upstream is re-raised by `next()` at the point
  where it happened. The state is the upstream position after the last item handed out, so
  items read ahead but not yet consumed are read again after a restore.

    pipeline = Serial(source, Map(decode_image), Batch(32), Prefetch(4))
  """

  def __init__(self, buffer_size=2):
    if buffer_size < 1:
      raise ValueError(f'Prefetch: buffer_size must be >= 1, got {buffer_size}.')
    self._buffer_size = int(buffer_size)

  def open(self, upstream):
    return _PrefetchStream(upstream, self._buffer_size)

  def __repr__(self):
    return f'Prefetch_{self._buffer_size}'


class _PrefetchStream(Stream):

  def __init__(self, upstream, buffer_size):
    self.upstream, self._buffer_size = upstream, buffer_size
    self._state = upstream.get_state()  # upstream position after the last item handed out
    self._thread, self._done = None, False

  def _start(self):
    self._queue = queue.Queue(self._buffer_size)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._work, args=(self._queue, self._stop),
                                    daemon=True, name='plait-prefetch')
    self._thread.start()

  def _put(self, q, stop, entry):
    while not stop.is_set():
      try:
        q.put(entry, timeout=0.1)
        return True
      except queue.Full:
        pass
    return False

  def _work(self, q, stop):
    while not stop.is_set():
      try:
        item = next(self.upstream)
        entry = ('item', item, self.upstream.get_state())
      except StopIteration:
        self._put(q, stop, (_END, None, None))
        return
      except BaseException as e:  # pylint: disable=broad-except
        self._put(q, stop, ('error', e, None))
        return
      if not self._put(q, stop, entry):
        return

  def __next__(self):
    if self._done:
      raise StopIteration
    if self._thread is None:
      self._start()
    kind, value, state = self._queue.get()
    if kind is _END:
      self._done = True
      raise StopIteration
    if kind == 'error':
      self._done = True
      raise value
    self._state = state
    return value

  def get_state(self):
    return self._state

  def close(self):
    """Stops the background thread (it is a daemon, so this is only needed to free it early)."""
    if self._thread is not None:
      self._stop.set()
      self._thread.join()
      self._thread = None

  def set_state(self, state):
    self.close()
    self.upstream.set_state(state)
    self._state, self._done = state, False

  def __del__(self):
    if getattr(self, '_thread', None) is not None:
      self._stop.set()
