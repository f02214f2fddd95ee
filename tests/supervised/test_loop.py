"""Loop: exact resume, checkpoint retention, NaN stop, mismatch errors, precision."""
import json
import os
import re
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plait.layers as tl
from plait.supervised import checkpoints
from plait.supervised import optimizers, schedules
from plait.supervised import train_step as step_lib
from plait.supervised import training
from plait.supervised.streams import DataError
from plait.supervised.tasks import EvalTask, TrainTask
from tests.supervised import helpers


def _loop(output_dir, data=None, eval_tasks=(), **settings):
  """A Loop of the tiny LM; keyword arguments are LoopSettings (see helpers.settings)."""
  return training.Loop(helpers.tiny_lm(), helpers.lm_task(data), eval_tasks=eval_tasks,
                       output_dir=output_dir, settings=helpers.settings(**settings))


def _ran(output_dir, n_steps, data=None, **kwargs):
  """A Loop (see `_loop`) after run(n_steps) and close()."""
  loop = _loop(output_dir, data, **kwargs)
  loop.run(n_steps)
  loop.close()
  return loop


def test_resume_reproduces_uninterrupted_losses(tmp_path):
  full = _ran(tmp_path / 'full', 6, checkpoint_every=100)
  first = _ran(tmp_path / 'resumed', 3, checkpoint_every=100)
  second = _loop(tmp_path / 'resumed', checkpoint_every=100)
  assert second.step == 3
  second.run(3)
  second.close()
  assert helpers.train_losses(first) + helpers.train_losses(second) == helpers.train_losses(full)
  for a, b in zip(jax.tree_util.tree_leaves(full.weights),
                  jax.tree_util.tree_leaves(second.weights)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  steps = [r['step'] for r in checkpoints_metrics(tmp_path / 'resumed') if r['split'] == 'train']
  assert steps == [1, 2, 3, 4, 5, 6]


def checkpoints_metrics(output_dir):
  with open(os.path.join(output_dir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def test_keep_latest_n_and_keep_best(tmp_path):
  # Eval on fixed batches; keep the 2 latest plus the 'best' by eval loss, with best_mode='max'
  # so that the kept one (the highest loss, early in training) is not among the latest.
  evals = EvalTask(lambda: helpers.RandomTokens(seed=7), [tl.CrossEntropyLoss()],
                   n_eval_batches=1)
  loop = _loop(tmp_path, eval_tasks=evals, checkpoint_every=1, keep_checkpoints=2,
               keep_best='eval/loss', best_mode='max')
  loop.run(8)
  loop.close()
  evals_by_step = {r['step']: r['loss'] for r in checkpoints_metrics(tmp_path)
                   if r['split'] == 'eval'}
  best = max(evals_by_step, key=evals_by_step.get)
  kept = sorted(int(s) for s in os.listdir(tmp_path / 'checkpoints') if s.isdigit())
  assert kept == sorted({7, 8, best})
  assert best not in (7, 8)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  loop = _loop(tmp_path, helpers.RandomTokens(nan_at=5), checkpoint_every=2)
  with pytest.raises(training.DivergedError, match='at step 5.*checkpoint \\(step 4\\)'):
    loop.run(10)
  assert loop.step == 4
  loop.close()
  assert sorted(int(s) for s in os.listdir(tmp_path / 'checkpoints')) == [2, 4]
  assert np.all(np.isfinite(np.asarray(loop.weights[3][0])))


def test_nan_found_a_step_late_leaves_exactly_the_last_finite_weights():
  # No checkpoint or eval at step 5, so its loss is checked only after step 6 is launched;
  # skip_non_finite must have kept step 4's weights through both.
  diverged = _loop(None, helpers.RandomTokens(nan_at=5), checkpoint_every=100)
  with pytest.raises(training.DivergedError, match='at step 5'):
    diverged.run(10)
  assert diverged.step == 4
  assert [r['step'] for r in diverged.history if r['split'] == 'train'] == [1, 2, 3, 4]
  clean = _ran(None, 4, checkpoint_every=100)
  for a, b in zip(jax.tree_util.tree_leaves((diverged.weights, diverged.opt_state)),
                  jax.tree_util.tree_leaves((clean.weights, clean.opt_state))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_skip_non_finite_keeps_everything_from_the_first_bad_step_on():
  def step(w, s, o, batch, rng):  # loss = batch; everything else moves by 1
    return step_lib.StepOutputs(w + 1, s + 1, o + 1, batch, jnp.abs(batch))

  guarded = jax.jit(step_lib.skip_non_finite(step))
  ones = jnp.ones((2,))
  moved = lambda out: [float(x[0]) for x in out[:3]]
  out, stopped = guarded(ones, ones, ones, jnp.float32(3.0), None, jnp.bool_(False))
  assert moved(out) == [2, 2, 2] and not stopped
  out, stopped = guarded(*out[:3], jnp.float32(np.nan), None, stopped)
  assert moved(out) == [2, 2, 2] and stopped
  out, stopped = guarded(*out[:3], jnp.float32(1.0), None, stopped)  # finite: still stopped
  assert moved(out) == [2, 2, 2] and stopped and float(out.loss) == 1.0


@pytest.mark.parametrize('bad', ['gradient', 'weights', 'opt_state'])
def test_skip_non_finite_stops_on_a_bad_gradient_or_update_with_a_finite_loss(bad):
  def step(w, s, o, batch, rng):   # a finite loss; one of the others NaN
    nan = jnp.float32(np.nan)
    return step_lib.StepOutputs(w + (nan if bad == 'weights' else 1), s + 1,
                                o + (nan if bad == 'opt_state' else 1), jnp.float32(2.0),
                                nan if bad == 'gradient' else jnp.float32(1.0))

  ones = jnp.ones((2,))
  out, stopped = jax.jit(step_lib.skip_non_finite(step))(ones, ones, ones, None, None,
                                                         jnp.bool_(False))
  assert stopped and [float(x[0]) for x in out[:3]] == [1, 1, 1]


def test_an_overflowing_update_with_a_finite_loss_never_reaches_a_checkpoint(tmp_path):
  # A learning rate that is inf in float32: the loss and gradient of step 1 are finite, the
  # updated weights are not. This used to be saved as "the last good checkpoint".
  task = TrainTask(helpers.RandomTokens(), tl.CrossEntropyLoss(), optimizers.SGD,
                   schedules.constant(1e39))
  loop = training.Loop(helpers.tiny_lm(), task, output_dir=tmp_path,
                       settings=helpers.settings(checkpoint_every=1))
  with pytest.raises(training.DivergedError,
                     match='the update made the weights or optimizer state non-finite .* '
                           'at step 1; no checkpoint was saved before it'):
    loop.run(3)
  loop.close()
  assert loop.step == 0 and not os.listdir(tmp_path / 'checkpoints')
  assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(loop.weights))


class _BreaksAt(helpers.RandomTokens):
  """RandomTokens whose batch number `at` (1-based) raises `error` once, then goes on."""

  def __init__(self, at, error):
    super().__init__()
    self.at, self.error = at, error

  def __next__(self):
    if self.i + 1 == self.at and self.error is not None:
      error, self.error = self.error, None
      raise error
    return super().__next__()


@pytest.mark.parametrize('error, match', [(StopIteration(), 'ran out after 4 batches'),
                                          (OSError('disk gone'), 'disk gone')])
def test_data_error_read_ahead_surfaces_after_the_step_in_flight(tmp_path, error, match):
  # The Loop reads batch 5 while step 4 runs; the error must still come after step 4 is
  # recorded and checkpointed, as if batch 5 had been read when step 5 began.
  loop = _loop(tmp_path, _BreaksAt(5, error), checkpoint_every=4)
  with pytest.raises(Exception, match=match):
    loop.run(10)
  assert loop.step == 4
  loop.close()
  assert [r['step'] for r in loop.history if r['split'] == 'train'] == [1, 2, 3, 4]
  assert sorted(int(s) for s in os.listdir(tmp_path / 'checkpoints')) == [4]
  assert checkpoints.Checkpointer(tmp_path).read_meta(4)['data']['batches'] == 4


class _BadIdAt(helpers.RandomTokens):
  """RandomTokens whose batch `at` has id `value` in entry `entry` at row 1, column 2."""

  def __init__(self, at, entry, value):
    super().__init__()
    self.at, self.entry, self.value = at, entry, value

  def __next__(self):
    batch = list(super().__next__())
    if self.i == self.at:
      batch[self.entry] = batch[self.entry].copy()
      batch[self.entry][1, 2] = self.value
    return tuple(batch)


@pytest.mark.parametrize('entry, value, what', [(0, -1, 'token ids of the model Serial'),
                                                (0, helpers.VOCAB, 'token ids'),
                                                (1, helpers.VOCAB + 3, 'classes of the model')])
def test_an_out_of_range_id_in_any_batch_stops_before_the_device_sees_it(tmp_path, entry, value,
                                                                        what):
  # Only the first batch used to be checked: an id -1 in batch 3 trained silently, an id past
  # the vocabulary became a NaN loss blamed on the learning rate.
  loop = _loop(tmp_path, _BadIdAt(3, entry, value), checkpoint_every=100)
  with pytest.raises(DataError,
                     match=rf'batch of step 3 has ids .* in entry {entry} .* e\.g\. {value} at '
                           rf'position \[1, 2\], but {what}.* must be in \[0, '
                           rf'{helpers.VOCAB - 1}\]'):
    loop.run(5)
  assert loop.step == 2 and [r['step'] for r in loop.history] == [1, 2]
  loop.close()


def test_read_ahead_batch_is_not_lost_between_runs(tmp_path):
  # run(3) reads batch 4 ahead; the next run(3) in the same process must train on it.
  split = _loop(None, checkpoint_every=100)
  split.run(3)
  split.run(3)
  assert helpers.train_losses(split) == helpers.train_losses(_ran(None, 6, checkpoint_every=100))


def test_checkpoint_of_other_model_names_mismatched_weights(tmp_path):
  loop = _ran(tmp_path, 1)
  other = tl.Serial(tl.Embedding(helpers.VOCAB, 16), tl.Dense(24), tl.Relu(),
                    tl.Dense(helpers.VOCAB))
  with pytest.raises(checkpoints.CheckpointError) as e:
    training.Loop(other, helpers.lm_task(), output_dir=tmp_path, settings=helpers.settings())
  message = str(e.value)
  assert ('Serial/Dense_24[1]/kernel: checkpoint [16, 16] float32 (saved as '
          'Serial/Dense_16[1]/kernel), model [16, 24] float32') in message
  assert 'Serial/Dense_32[3]/kernel' in message
  assert 'tree_unflatten' not in message


def test_restore_model_round_trip(tmp_path):
  loop = _ran(tmp_path, 2)
  model = helpers.tiny_lm()
  sig = jax.ShapeDtypeStruct((1, helpers.LENGTH), jnp.int32)
  weights, state, step = checkpoints.restore_model(str(tmp_path), model, sig)
  assert step == 2
  for a, b in zip(jax.tree_util.tree_leaves(loop.weights), jax.tree_util.tree_leaves(weights)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  x = np.random.default_rng(0).integers(0, helpers.VOCAB, (1, helpers.LENGTH)).astype(np.int32)
  np.testing.assert_array_equal(np.asarray(model(x)),
                                np.asarray(loop.model.pure_fn(x, loop.weights, loop.state)[0]))
  with pytest.raises(checkpoints.CheckpointError, match='available steps: \\[2\\]'):
    checkpoints.restore_model(str(tmp_path), model, sig, step=1)


def test_metrics_jsonl_tensorboard_and_plot(tmp_path):
  evals = EvalTask(lambda: helpers.RandomTokens(seed=3), [tl.CrossEntropyLoss(), tl.Accuracy()],
                   n_eval_batches=2)
  loop = _loop(tmp_path, eval_tasks=evals, checkpoint_every=2)
  loop.run(4)
  png = loop.plot()
  loop.close()
  records = checkpoints_metrics(tmp_path)
  train = [r for r in records if r['split'] == 'train']
  assert [r['step'] for r in train] == [1, 2, 3, 4]
  for r in train:
    assert r['learning_rate'] == pytest.approx(1e-2)
    assert np.isfinite(r['loss']) and r['gradient_norm'] > 0
  # The step that compiled has no time (see test_step_timing); the others do.
  assert 'step_time' not in train[0] and all(r['tokens_per_second'] > 0 for r in train[1:])
  assert [r['step'] for r in records if r['split'] == 'eval'] == [2, 4]
  assert 0.0 <= records[-1]['Accuracy'] <= 1.0
  for split in ('train', 'eval'):
    files = os.listdir(tmp_path / 'tensorboard' / split)
    assert any(f.startswith('events.out.tfevents') for f in files)
  with open(png, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_plain_lines_when_not_a_tty_and_tqdm_bar_on_terminal(capsys, monkeypatch):
  lines = []
  loop = training.Loop(helpers.tiny_lm(), helpers.lm_task(), print_fn=lines.append,
                       settings=helpers.settings(progress='auto', log_every=2))
  loop.run(3)
  # The compile is announced before it starts (a large model takes a minute), then timed.
  assert lines[0] == 'compiling the train step…'
  assert re.fullmatch(r'compiled the train step in \d+\.\d s\.', lines[1]), lines[1]
  assert [l.split(':')[0] for l in lines[2:]] == ['step 1', 'step 2', 'step 3']
  assert 'loss' in lines[2] and 'tokens_per_second' in lines[3]
  loop.run(2)  # compiled once per Loop; a later run() logs its own first step
  assert [l.split(':')[0] for l in lines[5:]] == ['step 4', 'step 5']
  monkeypatch.setattr('sys.stderr.isatty', lambda: True, raising=False)
  bar = training.Loop(helpers.tiny_lm(), helpers.lm_task(),
                      settings=helpers.settings(progress='auto'))
  bar.run(2)
  err = capsys.readouterr().err
  assert '2/2' in err and 'loss=' in err


def test_mixed_precision_keeps_float32_master_weights():
  def run(dtype):
    loop = _loop(None, compute_dtype=dtype)
    loop.run(3)
    return loop
  full, mixed = run(None), run(jnp.bfloat16)
  assert {x.dtype for x in jax.tree_util.tree_leaves(mixed.weights)} == {jnp.dtype('float32')}
  assert {x.dtype for x in jax.tree_util.tree_leaves(mixed.opt_state)
          if jnp.issubdtype(x.dtype, jnp.floating)} == {jnp.dtype('float32')}
  f, m = helpers.train_losses(full), helpers.train_losses(mixed)
  np.testing.assert_allclose(m, f, rtol=2e-2)
  assert m != f  # bf16 compute really happened
  assert m[-1] < m[0]


def test_max_seconds_stops_early_evaluates_and_checkpoints(tmp_path):
  evals = EvalTask(lambda: helpers.RandomTokens(seed=7), [tl.CrossEntropyLoss()],
                   n_eval_batches=1)
  loop = _loop(tmp_path, eval_tasks=evals, checkpoint_every=100)
  loop.run(50, max_seconds=0)  # Stops after the first step.
  loop.close()
  assert loop.step == 1
  records = checkpoints_metrics(tmp_path)
  assert [r['step'] for r in records if r['split'] == 'eval'] == [1]
  assert records[0]['elapsed_seconds'] >= 0
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['1']
  with pytest.raises(ValueError, match='max_seconds'):
    _loop(tmp_path / 'other').run(1, max_seconds=-1)


class _SigtermAt(helpers.RandomTokens):
  """RandomTokens that sends this process SIGTERM while producing batch `at`."""

  def __init__(self, at):
    super().__init__()
    self.at = at

  def __next__(self):
    batch = super().__next__()
    if self.i == self.at:
      signal.raise_signal(signal.SIGTERM)
    return batch


def test_sigterm_finishes_the_step_checkpoints_and_resumes_exactly(tmp_path):
  previous = signal.getsignal(signal.SIGTERM)
  # Batch 4 is read ahead while step 3 runs, so the signal comes during step 3.
  loop = _ran(tmp_path / 'stopped', 6, data=_SigtermAt(4), checkpoint_every=100)
  assert loop.step == 3 and loop.stopped_by == 'SIGTERM'
  assert signal.getsignal(signal.SIGTERM) == previous  # the handler is restored
  assert sorted(os.listdir(tmp_path / 'stopped' / 'checkpoints')) == ['3']
  resumed = _ran(tmp_path / 'stopped', 3, checkpoint_every=100)
  full = _ran(tmp_path / 'full', 6, checkpoint_every=100)
  assert helpers.train_losses(loop) + helpers.train_losses(resumed) == helpers.train_losses(full)


def test_eval_after_donating_train_steps_reads_the_current_state(tmp_path):
  # The train step donates weights, state and optimizer state on every backend. Evaluation
  # used to read the state captured before the first step (donated since): "Array has been
  # deleted" at the first eval, which is how the full Reformer configs crashed on a GPU.
  model = tl.Serial(helpers.tiny_lm(), helpers.CountCalls())
  evals = EvalTask(lambda: helpers.RandomTokens(seed=3), [tl.CrossEntropyLoss()],
                   n_eval_batches=1)
  loop = training.Loop(model, helpers.lm_task(), eval_model=model, eval_tasks=evals,
                       output_dir=tmp_path, settings=helpers.settings())
  before = jax.tree_util.tree_leaves((loop.weights, loop.state))
  loop.run(4)
  loop.close()
  assert all(x.is_deleted() for x in before)   # donated, on CPU as on a GPU
  assert int(loop.state[1]) == 4
  assert [r['step'] for r in loop.history if r['split'] == 'eval'] == [2, 4]


def test_eval_model_runs_after_the_loop_built_it(tmp_path):
  # The Loop inits models inside jax.eval_shape; init used to leave tracers in the layer's
  # notebook cache, so calling the eval model afterwards raised UnexpectedTracerError.
  eval_model = helpers.tiny_lm()
  loop = training.Loop(helpers.tiny_lm(), helpers.lm_task(), eval_model=eval_model,
                       output_dir=tmp_path, settings=helpers.settings())
  loop.close()
  x = np.ones((1, helpers.LENGTH), np.int32)
  assert loop.eval_model(x).shape == (1, helpers.LENGTH, helpers.VOCAB)


def test_one_task_and_settings_are_checked_before_anything_is_touched(tmp_path):
  with pytest.raises(TypeError, match='one TrainTask'):
    training.Loop(helpers.tiny_lm(), [helpers.lm_task()], output_dir=tmp_path)
  with pytest.raises(TypeError, match='LoopSettings'):
    training.Loop(helpers.tiny_lm(), helpers.lm_task(), settings={'checkpoint_every': 2})
  for bad in (dict(checkpoint_every=0), dict(best_mode='best'), dict(progress='loud'),
              dict(compute_dtype='int8'), dict(on_corrupt_checkpoint='ignore')):
    with pytest.raises(ValueError, match=f'LoopSettings.{next(iter(bad))}'):
      helpers.settings(**bad)
  assert os.listdir(tmp_path) == []
