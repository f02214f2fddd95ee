"""A failed write (full disk, quota, read-only) stops training with one OSError naming the
file and the cause: metrics.jsonl, TensorBoard event files and checkpoints alike. (The real
full disk, a tmpfs, is tests/reliability/test_disk_full.py in the slow suite.)"""
import errno
import threading

import pytest

from plait.supervised import checkpoints, metrics_log


def _no_space(*unused_args, **unused_kwargs):
  raise OSError(errno.ENOSPC, 'No space left on device')


def test_a_failed_tensorboard_write_raises_in_the_caller_naming_the_event_file(tmp_path,
                                                                              monkeypatch):
  """tensorboardX's SummaryWriter wrote from its own thread: when that thread died on a full
  disk, the next add_scalar blocked forever on its queue (the trainer hung for hours)."""
  writer = metrics_log.MetricsWriter(str(tmp_path))
  writer.write('train', 1, {'loss': 2.0})
  from tensorboardX.event_file_writer import EventsWriter  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(EventsWriter, 'write_event', _no_space)
  threads = threading.active_count()
  result = {}
  def write():
    try:
      writer.write('train', 2, {'loss': 1.0})
    except OSError as e:
      result['error'] = e
  worker = threading.Thread(target=write, daemon=True)
  worker.start()
  worker.join(timeout=20)
  assert not worker.is_alive(), 'MetricsWriter.write hung on a failed event-file write'
  error = result['error']
  assert error.errno == errno.ENOSPC and 'tfevents' in error.filename, error
  assert str(tmp_path / 'tensorboard' / 'train') in error.filename
  assert threading.active_count() <= threads  # no writer thread of its own


def test_a_failed_metrics_jsonl_write_names_the_file(tmp_path, monkeypatch):
  writer = metrics_log.MetricsWriter(str(tmp_path), tensorboard=False)
  monkeypatch.setattr(writer, '_file', type('Full', (), {'write': _no_space, 'flush': _no_space,
                                                         'close': lambda self: None})())
  with pytest.raises(OSError, match='No space left on device') as e:
    writer.write('train', 1, {'loss': 2.0})
  assert e.value.filename == str(tmp_path / 'metrics.jsonl')


# How orbax 0.11 reports a full disk from its save thread (tensorstore's message).
TENSORSTORE_FULL = ('RESOURCE_EXHAUSTED: Error writing local file "/x/checkpoints/60.orbax-'
                    'checkpoint-tmp/state/manifest.ocdbt": Failed to write 114 bytes to file 12: '
                    "No space left on device [os_error_code='28']")


@pytest.mark.parametrize('failure, cause, code', [
    (ValueError(TENSORSTORE_FULL), 'No space left on device', errno.ENOSPC),
    (OSError(errno.EROFS, 'Read-only file system'), 'Read-only file system', errno.EROFS),
    (RuntimeError('something else\nwith a second line'), 'RuntimeError: something else', None)])
def test_a_failed_checkpoint_save_is_one_oserror_naming_step_directory_and_cause(
    tmp_path, monkeypatch, failure, cause, code):
  checkpointer = checkpoints.Checkpointer(str(tmp_path))
  checkpointer._saving_step = 60  # pylint: disable=protected-access
  def fail():
    raise failure
  monkeypatch.setattr(checkpointer._manager, 'wait_until_finished', fail)  # pylint: disable=protected-access
  with pytest.raises(OSError) as e:
    checkpointer.wait()
  message = str(e.value)
  assert message == f'could not write checkpoint 60 in {tmp_path}/checkpoints: {cause}'
  assert e.value.errno == code and e.value.__cause__ is failure
