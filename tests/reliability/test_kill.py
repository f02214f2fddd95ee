"""SIGKILL the trainer CLI between checkpoints and mid-checkpoint; the rerun matches exactly.

Each case: an uninterrupted reference run, then a run killed at a random point and
restarted with the same command. The restart must resume from the last complete
checkpoint (never from orbax's temporary directory of a killed save) and its
metrics.jsonl must hold exactly the reference's loss at every step.
"""
import random

import pytest

from tests.reliability import kill_harness as kh

STEPS, EVERY = 12, 4


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  directory = tmp_path_factory.mktemp('reference')
  config = kh.write_config(str(directory), STEPS, EVERY)
  kh.run(config, str(directory / 'run'))
  losses = kh.train_losses(str(directory / 'run'))
  assert sorted(losses) == list(range(1, STEPS + 1))
  return config, losses


def _kill_and_resume(config, output_dir, predicate_for):
  """Kills a run when predicate_for(output_dir) holds, reruns; returns (killed, resumed_at)."""
  process = kh.start(config, output_dir)
  killed = kh.kill_when(process, predicate_for(output_dir))
  complete = kh.complete_steps(output_dir)
  pending = [e for e in kh.checkpoint_entries(output_dir) if kh.TMP_MARK in e]
  out = kh.run(config, output_dir)
  resumed_at = complete[-1] if complete else 0
  if complete:
    assert f'Resumed from the checkpoint at step {resumed_at} ' in out, out
  assert not [e for e in kh.checkpoint_entries(output_dir) if kh.TMP_MARK in e]
  return killed, complete, pending


def _check_kill_mid_checkpoint(reference, output_dir, target):
  config, expected = reference
  killed, complete, pending = _kill_and_resume(config, output_dir,
                                               lambda d: kh.while_writing(d, target))
  assert kh.train_losses(output_dir) == expected
  hit = killed and any(e.startswith(f'{target}{kh.TMP_MARK}') for e in pending)
  if hit:  # the killed save was partial and not loaded: resumed from the one before
    assert target not in complete and (complete[-1] if complete else 0) == target - EVERY
  return hit


def _check_kill_between_checkpoints(reference, output_dir, step):
  config, expected = reference
  killed, complete, _ = _kill_and_resume(config, output_dir, lambda d: kh.after_step(d, step))
  assert killed
  # The checkpoint due before `step` may still have been writing (async) when killed.
  assert not complete or complete[-1] <= step
  assert kh.train_losses(output_dir) == expected


def test_kill_during_async_checkpoint_resumes_exactly(reference, tmp_path):
  # The save window is short; a missed window (the save finished first) is retried.
  hits = [_check_kill_mid_checkpoint(reference, str(tmp_path / f'try{i}'), 2 * EVERY)
          for i in range(1)]
  for i in range(1, 3):
    if any(hits):
      break
    hits.append(_check_kill_mid_checkpoint(reference, str(tmp_path / f'try{i}'), 2 * EVERY))
  assert any(hits), 'never killed inside a checkpoint write'


@pytest.mark.slow
@pytest.mark.parametrize('repetition', range(5))
def test_kill_between_checkpoints_resumes_exactly(reference, tmp_path, repetition):
  step = random.Random(repetition).choice([s for s in range(2, STEPS) if s % EVERY])
  _check_kill_between_checkpoints(reference, str(tmp_path / 'run'), step)


@pytest.mark.slow
@pytest.mark.parametrize('repetition', range(5))
def test_kill_during_each_checkpoint_resumes_exactly(reference, tmp_path, repetition):
  target = random.Random(100 + repetition).choice([EVERY, 2 * EVERY])
  hits = [_check_kill_mid_checkpoint(reference, str(tmp_path / f'try{i}'), target)
          for i in range(3)]
  assert any(hits), 'never killed inside a checkpoint write'
