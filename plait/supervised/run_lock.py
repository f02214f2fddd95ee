"""One trainer per output directory: an exclusive lock on `output_dir/.plait.lock`.

Two trainers on one directory corrupt each other's checkpoints (orbax: "NOT_FOUND: Error
writing ... in OCDBT database") and interleave metrics.jsonl. The lock is an OS file lock
(`fcntl.flock`), so it is released on any exit, a kill -9 included: a dead holder never
blocks the next run. The file keeps the holder's pid for the error message.

  >>> with run_lock.held('/tmp/run'):
  ...   ...          # a second process entering here gets RunLockedError naming this pid

Within one process the lock is re-entrant (`train()` takes it, then its Loop does). In a
multi-process job (every process runs the same Loop on one shared output_dir) only process 0
takes it, so the job's own processes never refuse each other.
"""
import contextlib
import fcntl
import os

LOCK_FILE = '.plait.lock'
_HELD = {}  # lock path -> [fd, count] held by this process


class RunLockedError(RuntimeError):
  """Another process is training in this output directory."""


def acquire(output_dir):
  """Takes the lock of `output_dir` (created if missing); RunLockedError if another holds it."""
  import jax  # pylint: disable=import-outside-toplevel
  if jax.process_index() != 0:
    return
  os.makedirs(output_dir, exist_ok=True)
  path = os.path.join(os.path.abspath(output_dir), LOCK_FILE)
  if path in _HELD:
    _HELD[path][1] += 1
    return
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = os.read(fd, 64).decode('ascii', 'replace').strip() or 'unknown'
    os.close(fd)
    raise RunLockedError(f'{output_dir} is in use by another trainer (pid {holder}); wait for it '
                         'to finish, stop it, or use another --output_dir.') from None
  os.ftruncate(fd, 0)
  os.write(fd, f'{os.getpid()}\n'.encode('ascii'))
  _HELD[path] = [fd, 1]


def release(output_dir):
  """Releases one acquire() of `output_dir`'s lock (the OS lock goes with the last one)."""
  path = os.path.join(os.path.abspath(output_dir), LOCK_FILE)
  entry = _HELD.get(path)
  if entry is None:
    return
  entry[1] -= 1
  if entry[1] == 0:
    del _HELD[path]
    fcntl.flock(entry[0], fcntl.LOCK_UN)
    os.close(entry[0])


@contextlib.contextmanager
def held(output_dir):
  acquire(output_dir)
  try:
    yield
  finally:
    release(output_dir)
