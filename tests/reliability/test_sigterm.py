"""SIGTERM the trainer CLI (preemption): it checkpoints the step it is on, exits 143, resumes."""
import os
import signal
import time

import pytest

from tests.reliability import kill_harness as kh

STEPS, EVERY = 400, 1000  # no scheduled checkpoint before the end: only the SIGTERM one


@pytest.mark.slow
def test_sigterm_saves_the_current_step_and_the_rerun_matches_an_uninterrupted_run(tmp_path):
  config = kh.write_config(str(tmp_path), STEPS, EVERY)
  kh.run(config, str(tmp_path / 'reference'))
  expected = kh.train_losses(str(tmp_path / 'reference'))
  output_dir = str(tmp_path / 'run')
  process = kh.start(config, output_dir)
  deadline = time.monotonic() + 240
  while not kh.after_step(output_dir, 3)() and time.monotonic() < deadline:
    assert process.poll() is None, process.stdout.read()
    time.sleep(0.001)
  os.kill(process.pid, signal.SIGTERM)
  out, _ = process.communicate(timeout=120)
  assert process.returncode == 128 + 15, out
  assert 'stopped by SIGTERM' in out and 'rerun the same command to resume' in out
  saved = kh.complete_steps(output_dir)
  assert len(saved) == 1 and 3 <= saved[0] < STEPS, saved
  resumed = kh.run(config, output_dir)
  assert f'Resumed from the checkpoint at step {saved[0]} ' in resumed
  assert kh.train_losses(output_dir) == expected
