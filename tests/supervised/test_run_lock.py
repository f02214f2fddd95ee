"""One trainer per output directory: a second one is refused naming the holder's pid."""
import os
import subprocess
import sys
import textwrap

import pytest

import plait.layers as tl
from plait.supervised import run_lock, training
from plait.supervised.tasks import EvalTask
from tests.supervised import helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Holds the lock of argv[1] until stdin closes, then exits (or is killed).
HOLDER = textwrap.dedent('''
    import sys
    from plait.supervised import run_lock
    run_lock.acquire(sys.argv[1])
    print('held', flush=True)
    sys.stdin.read()
''')


def _holder(directory):
  process = subprocess.Popen([sys.executable, '-c', HOLDER, str(directory)], cwd=REPO,
                             env=dict(os.environ, PYTHONPATH=REPO), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
  assert process.stdout.readline().strip() == 'held'
  return process


def test_a_second_trainer_is_refused_naming_the_holder_and_nothing_is_written(tmp_path):
  holder = _holder(tmp_path)
  try:
    with pytest.raises(run_lock.RunLockedError, match=f'in use by another trainer '
                                                       f'\\(pid {holder.pid}\\)'):
      training.Loop(helpers.tiny_lm(), helpers.lm_task(), output_dir=tmp_path,
                    settings=helpers.settings())
    assert sorted(os.listdir(tmp_path)) == [run_lock.LOCK_FILE]
  finally:
    holder.stdin.close()
    holder.wait()
  loop = training.Loop(helpers.tiny_lm(), helpers.lm_task(), output_dir=tmp_path,
                       settings=helpers.settings())   # free again once the holder exits
  loop.close()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
  holder = _holder(tmp_path)
  holder.kill()
  holder.wait()
  with run_lock.held(tmp_path):
    assert open(tmp_path / run_lock.LOCK_FILE).read().strip() == str(os.getpid())


def test_the_lock_is_reentrant_in_a_process_and_released_by_close(tmp_path):
  with run_lock.held(tmp_path):
    loop = training.Loop(helpers.tiny_lm(), helpers.lm_task(), output_dir=tmp_path,
                         settings=helpers.settings())
    loop.close()
  holder = _holder(tmp_path)   # would block on a lock this process still held
  holder.stdin.close()
  holder.wait()


def test_a_refused_start_releases_the_lock(tmp_path):
  with pytest.raises(Exception):
    training.Loop(helpers.tiny_lm(), helpers.lm_task(), output_dir=tmp_path,
                  eval_tasks=[EvalTask(iter([]), [tl.CrossEntropyLoss()])],
                  settings=helpers.settings())
  with pytest.raises(Exception):
    training.Loop(helpers.tiny_lm(), helpers.lm_task(data=iter([])), output_dir=tmp_path,
                  settings=helpers.settings())
  holder = _holder(tmp_path)
  holder.stdin.close()
  holder.wait()
