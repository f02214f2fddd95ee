"""Step times with the launch-ahead Loop: true on the steps that evaluate and checkpoint too."""
import statistics
import threading
import time

import jax
import numpy as np
import pytest

import plait.layers as tl
from plait.supervised import step_timing
from plait.supervised import training
from plait.supervised.tasks import EvalTask
from tests.supervised import helpers

SLEEP = 0.04  # seconds: the slow part of a step in the tests below


def test_step_timer_leaves_out_pauses_and_sums_to_the_training_time():
  timer = step_timing.StepTimer(start=10.0)
  completions = [10.1, 10.2, 10.3, 17.4, 17.5]
  times = []
  for k, done in enumerate(completions):
    times.append(timer.step_done(done))
    if k == 2:
      timer.pause(7.0)  # an evaluation and a checkpoint after the third step
  np.testing.assert_allclose(times, [0.1] * 5, rtol=1e-9)
  # Over any window: the window's time less its pauses.
  assert sum(times) == pytest.approx(completions[-1] - 10.0 - 7.0)


class _Ready:
  """Stands for a jax array: `block_until_ready` returns when `event` is set."""

  def __init__(self, event):
    self.event = event

  def block_until_ready(self):
    self.event.wait()
    return self


def test_watcher_stamps_when_the_step_finishes_not_when_the_host_looks():
  watcher = step_timing.CompletionWatcher()
  first, second = threading.Event(), threading.Event()
  start = time.perf_counter()
  watcher.watch(1, _Ready(first))
  watcher.watch(2, _Ready(second))
  threading.Timer(0.05, first.set).start()
  threading.Timer(0.10, second.set).start()
  time.sleep(0.4)  # the host is busy elsewhere; it looks late
  one, two = watcher.completed_at(1) - start, watcher.completed_at(2) - start
  watcher.close()
  assert 0.05 <= one < 0.2 and 0.10 <= two < 0.25 and two > one


def test_watcher_survives_a_failing_computation():
  class Failing:
    def block_until_ready(self):
      raise RuntimeError('device error')
  watcher = step_timing.CompletionWatcher(clock=lambda: 42.0)
  watcher.watch('x', Failing())
  assert watcher.completed_at('x') == 42.0
  watcher.close()


class _SlowData(helpers.RandomTokens):
  """Host-bound training: every batch takes SLEEP seconds to read."""

  def __next__(self):
    time.sleep(SLEEP)
    return super().__next__()


def _sleep(x):
  time.sleep(SLEEP)
  return x


def _slow_layer():
  """Device-bound training: the step itself takes SLEEP seconds (a host callback)."""
  return tl.Fn('Slow', lambda x: jax.pure_callback(
      _sleep, jax.ShapeDtypeStruct(x.shape, x.dtype), x))


@pytest.mark.parametrize('bound', ['host', 'device'])
def test_step_time_on_eval_and_checkpoint_steps_matches_the_others(tmp_path, bound):
  # Every third step evaluates and checkpoints, so the host waits for it at once; the old
  # host-clock figure was ~0.001 s there (tokens_per_second 50x too high).
  data = _SlowData() if bound == 'host' else helpers.RandomTokens()
  model = helpers.tiny_lm() if bound == 'host' else tl.Serial(_slow_layer(), helpers.tiny_lm())
  evals = EvalTask(lambda: helpers.RandomTokens(seed=3), [tl.CrossEntropyLoss()])
  loop = training.Loop(model, helpers.lm_task(data), eval_tasks=evals, output_dir=tmp_path,
                       settings=helpers.settings(checkpoint_every=3, tensorboard=False))
  loop.run(3)  # compiles, and does the first evaluation, checkpoint and metrics write
  loop.run(9)
  loop.close()
  train = [r for r in loop.history if r['split'] == 'train']
  later = {r['step']: r['step_time'] for r in train if r['step'] > 3}
  typical = statistics.median(later.values())
  assert SLEEP <= typical < 3 * SLEEP, later
  for step, seconds in later.items():  # within a factor 3 (the old figure was 100x off)
    assert typical / 3 < seconds < 3 * typical, (step, later)
  assert 'step_time' not in train[0]  # the step that compiled: no figure rather than a wrong one
  for r in train[1:]:
    tokens = helpers.BATCH * helpers.LENGTH
    assert r['tokens_per_second'] == pytest.approx(tokens / r['step_time'])
