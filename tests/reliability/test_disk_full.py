"""A really full disk: a small tmpfs as output_dir, the shipped tiny config, checkpoints every
10 steps. The trainer stops within seconds with one line naming the cause (it hung for hours
when tensorboardX's writer thread died), keeps its complete checkpoints, and once there is
space again the same command resumes and ends with the uninterrupted run's losses.

Needs permission to mount a tmpfs (root in a container that allows it); skipped otherwise.
"""
import os
import subprocess
import sys

import pytest

from tests.reliability import kill_harness as kh

CONFIG = 'reformer_duplication_tiny.gin'
STEPS = 60
DEBUG = []  # ['--debug'] to see where a failure comes from


def _train(output_dir, timeout=240):
  return subprocess.run(
      [sys.executable, '-m', 'plait.supervised.trainer', f'--config_file={CONFIG}',
       f'--output_dir={output_dir}', f'--steps={STEPS}', '--config=LoopSettings.checkpoint_every = 10',
       '--config=LoopSettings.progress = "lines"', '--compilation_cache_dir=none', *DEBUG],
      cwd=kh.REPO, env=kh.environment(), capture_output=True, text=True, timeout=timeout,
      check=False)


def _mount(directory, size):
  done = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(directory)],
                        capture_output=True, text=True, check=False)
  if done.returncode:
    pytest.skip(f'cannot mount a tmpfs here: {done.stderr.strip()}')


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  output_dir = tmp_path_factory.mktemp('reference') / 'run'
  done = _train(output_dir)
  assert done.returncode == 0, done.stderr
  return kh.train_losses(str(output_dir))


@pytest.mark.slow
@pytest.mark.parametrize('size', ['400k', '3m'])  # fills during the first save / a later one
def test_a_full_disk_stops_with_one_line_keeps_checkpoints_and_resumes(tmp_path, size,
                                                                       uninterrupted):
  disk = tmp_path / 'disk'
  disk.mkdir()
  _mount(disk, size)
  try:
    output_dir = disk / 'run'
    full = _train(output_dir)  # a hang raises subprocess.TimeoutExpired
    errors = [l for l in full.stderr.splitlines() if not l.startswith('ERROR:absl:')]
    assert full.returncode == 1, full.stderr
    assert len(errors) == 1 and 'Traceback' not in full.stderr, full.stderr
    assert errors[0].startswith('plait-train: ') and 'No space left on device' in errors[0]
    assert str(output_dir) in errors[0], errors[0]
    kept = kh.complete_steps(str(output_dir))
    subprocess.run(['mount', '-o', 'remount,size=64m', str(disk)], check=True)
    resumed = _train(output_dir)
    assert resumed.returncode == 0, resumed.stderr
    if kept:
      assert f'Resumed from the checkpoint at step {kept[-1]} ' in resumed.stdout + resumed.stderr
    assert kh.train_losses(str(output_dir)) == uninterrupted
    assert not [e for e in kh.checkpoint_entries(str(output_dir)) if kh.TMP_MARK in e]
  finally:
    subprocess.run(['umount', str(disk)], check=False)
