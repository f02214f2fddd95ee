"""Step times that stay true when the Loop launches step k + 1 before it reads step k.

The host cannot time a step by its own clock between launches: a launch returns at once, and
the host looks at a step's results at different points of its loop (right away on a step
that evaluates or checkpoints, a step later otherwise), so the gap between two looks says
little. Instead:

- `CompletionWatcher` stamps the moment each launched step's outputs become ready, from a
  thread that waits on them (`jax.block_until_ready` lets go of the interpreter while it
  waits), whatever the host is doing then.
- `StepTimer` makes each step's time the time from the previous step's completion to this
  one's, less the Loop's pauses in between (evaluation, checkpointing, compiling), during
  which no step is in flight. A device-bound run gets the device's time per step, a
  host-bound run (slow input) the host's time per step, i.e. the rate training goes at.
  Summed over any window, step times are the window's training time without its pauses.

  >>> timer = StepTimer(start=0.0)
  >>> timer.step_done(completed_at=0.10), timer.step_done(completed_at=0.20)
  (0.1, 0.1)
  >>> timer.pause(5.0)                         # an evaluation after step 2
  >>> round(timer.step_done(completed_at=5.30), 6)
  0.1
"""
import queue
import threading
import time

import jax


class CompletionWatcher:
  """Times when launched computations finish, seen by a background thread.

    >>> watcher = CompletionWatcher()
    >>> watcher.watch(7, (outputs.loss, stopped))   # right after launching step 7
    >>> watcher.completed_at(7)                     # blocks until step 7 is done; a time
    >>> watcher.close()

  Args:
    clock: the time function (default `time.perf_counter`); tests pass a fake one.

  The stamp lags the true completion by at most the interpreter's thread switch interval
  (`sys.getswitchinterval()`, 5 ms by default) while the host runs Python code, and by
  much less while it waits (for data, for a result). A computation that fails is stamped
  when it fails; its error is raised where the Loop reads its results.
  """

  def __init__(self, clock=time.perf_counter):
    self._clock = clock
    self._pending = queue.SimpleQueue()
    self._done = {}
    self._changed = threading.Condition()
    self._thread = threading.Thread(target=self._wait_in_order, name='plait-step-watcher',
                                    daemon=True)
    self._thread.start()

  def watch(self, key, arrays):
    """Starts watching `arrays` (any pytree of jax arrays) under `key`; returns at once."""
    self._pending.put((key, arrays))

  def completed_at(self, key):
    """The time `key`'s arrays became ready (waits for them if they are not yet)."""
    with self._changed:
      self._changed.wait_for(lambda: key in self._done)
      return self._done.pop(key)

  def close(self):
    """Stops the thread once it has seen every watched computation finish."""
    if self._thread is None:
      return
    self._pending.put(None)
    self._thread.join()
    self._thread = None

  def _wait_in_order(self):
    while True:
      item = self._pending.get()
      if item is None:
        return
      key, arrays = item
      try:
        jax.block_until_ready(arrays)
      except Exception:  # pylint: disable=broad-except
        pass  # the Loop gets the error when it reads the results
      stamp = self._clock()
      with self._changed:
        self._done[key] = stamp
        self._changed.notify_all()


class StepTimer:
  """Per-step times from completion times, leaving out the Loop's pauses.

  Args:
    start: when the run began (the "completion" before its first step).

  Call `pause(seconds)` for time the Loop spent with no step in flight (evaluating,
  checkpointing, compiling) and `step_done(completed_at)` for each step in order.
  """

  def __init__(self, start):
    self._last_completion = start
    self._paused = 0.0

  def pause(self, seconds):
    self._paused += max(0.0, seconds)

  def step_done(self, completed_at):
    """The step's time: since the previous completion, less the pauses since then."""
    seconds = completed_at - self._last_completion - self._paused
    self._last_completion, self._paused = completed_at, 0.0
    return max(seconds, 0.0)
