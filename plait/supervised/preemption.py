"""Stop training cleanly on SIGTERM (preemption): finish the step, checkpoint, then return.

Cloud schedulers and preemptible VMs send SIGTERM and kill the process a little later.
`Loop.run` installs `StopOnSignal` while it runs: the signal only sets a flag, the loop
ends after the current step, saves a checkpoint and reports `loop.stopped_by`. A second
SIGTERM falls through to the previous handler (normally: exit at once). Only the main
thread can install handlers; elsewhere this is a no-op.

  >>> with StopOnSignal() as stop:
  ...   while not stop.requested:
  ...     train_one_step()
"""
import signal
import threading


class StopOnSignal:
  """Context manager: `requested` becomes the signal's name once one of `signals` arrives."""

  def __init__(self, signals=(signal.SIGTERM,)):
    self._signals, self._previous, self.requested = tuple(signals), {}, None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in self._signals:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    if self.requested is not None:  # A second signal: behave as if we were not here.
      previous = self._previous.get(signum)
      if callable(previous):
        previous(signum, frame)
      elif previous != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
      return
    self.requested = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, previous in self._previous.items():
      signal.signal(sig, previous)
    self._previous = {}
    return False
