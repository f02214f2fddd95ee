"""The training loop: `Loop(model, task, ...)` and `loop.run(n_steps)`.

  >>> task = TrainTask(batches, tl.CrossEntropyLoss(), optimizers.Adam,
  ...                  schedules.warmup_and_rsqrt_decay(100, 1e-3))
  >>> evals = EvalTask(eval_batches, [tl.CrossEntropyLoss(), tl.Accuracy()], n_eval_batches=10)
  >>> loop = Loop(model, task, eval_tasks=evals, output_dir='/tmp/run',
  ...             settings=LoopSettings(checkpoint_every=500))
  >>> loop.run(2000)   # resumes automatically from /tmp/run's latest checkpoint
  >>> loop.plot()      # /tmp/run/loss.png

Starting a Loop is a few named steps, in this order, so that a bad input fails before
anything in output_dir is written: open the output directory (lock, resume point),
read the first batch, build the weights' structure, compile the steps (tracing them on
the first batch), then restore the checkpoint or initialize, then open the metrics files.
`run` launches steps, evaluates (`run_evals`) and saves (`save_checkpoint`) on schedule.

Determinism: step k uses rng `fold_in(train_rng, k)` and the k-th batch of the
stream, and the checkpoint holds everything else (weights, state, optimizer
state, rng, data position), so stopping after step k and resuming gives the
same losses as an uninterrupted run.

Overlap: the host launches step k + 1 before it waits for step k's loss, and while step
k + 1 runs it reads batch k + 2 (a peek, so a checkpoint's data position excludes it) and
the logged learning rate. A non-finite loss is therefore found a step late; the step is
wrapped in `train_step.skip_non_finite`, so the weights held then are still those before
the bad step. Steps that evaluate, checkpoint or stop are waited for before anything else
is launched, and a data error from reading ahead is raised only after the step in flight
is checked and logged. So the host's clock between launches or reads says nothing about a
step's duration; each step's `step_time` is measured from the steps' completions instead
(`plait.supervised.step_timing`).

Multi-device: when more than one device is visible, batches are split over a
`jax.sharding.Mesh` 'data' axis and everything else is replicated (see
`plait.supervised.distributed`); the step is the same pure function.
"""
import contextlib
import math
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from plait import shapes
from plait.supervised import batch_checks
from plait.supervised import checkpoints as ckpt_lib
from plait.supervised import distributed
from plait.supervised import metrics_log
from plait.supervised import preemption
from plait.supervised import run_lock
from plait.supervised import step_timing
from plait.supervised import train_step as step_lib
from plait.supervised.loop_settings import LoopSettings
from plait.supervised.tasks import EvalTask, TrainTask


class DivergedError(FloatingPointError):
  """A step's loss, gradient, weights or optimizer state became NaN or infinite.

  The weights stay at the last good step and the last good checkpoint is kept.
  """


def _every(period):
  """step -> bool: True every `period` steps (never for None)."""
  return (lambda step: False) if period is None else (lambda step: step % period == 0)


class _Launched(NamedTuple):
  """A train step launched on the device and not yet checked (see `Loop._finish`)."""
  step: int
  batch: Any
  tokens: int
  loss: Any
  gradient_norm: Any
  stopped: Any  # skip_non_finite's flag after this step: True from the first bad step on
  learning_rate: float | None
  timed: bool  # False for the launch that compiled the step (see Loop._finish)


class Loop:
  """Trains `model` on a TrainTask, evaluates on EvalTasks, checkpoints and resumes.

  Args:
    model: a Layer (built for training, e.g. mode='train').
    task: the TrainTask (data, loss, optimizer).
    eval_model: the model used for evaluation (e.g. the same architecture with
      mode='eval'); must have the same weights structure. Default: `model`.
    eval_tasks: an EvalTask or a sequence of them (distinct names).
    output_dir: where checkpoints, metrics.jsonl and TensorBoard files go; if it
      holds a checkpoint, training resumes from the latest one. None: nothing saved.
    settings: a LoopSettings (checkpoint and eval periods, retention, dtype, seed,
      logging); default LoopSettings().
    mesh: 'auto' (a 'data' mesh over all devices when there are several), a
      `jax.sharding.Mesh` with a 'data' axis, or None (default device only). A
      'model' axis splits large weights, a 'seq' axis the length axis of batches
      (`distributed.make_mesh(model=2)`; see `plait.supervised.distributed`).
    tokenizer: saved to output_dir/tokenizer (see `checkpoints.save_tokenizer`).
    print_fn: where plain log lines go (default print).

  Before anything in output_dir is written, the Loop checks the first batch against the
  model (shapes, token ids within the Embedding's vocabulary, the tokenizer's size) and
  the checkpoint against the model, so a bad input leaves a previous run untouched.
  """

  def __init__(self, model, task, eval_model=None, eval_tasks=(), output_dir=None,
               settings=None, mesh='auto', tokenizer=None, print_fn=None):
    self._checkpointer = self._metrics = self._locked_dir = None
    try:
      self._configure(model, task, eval_model, eval_tasks, output_dir, settings, mesh,
                      print_fn)
      resume_step = self._open_output_dir()
      first_batch = self._first_batch(resume_step)
      structure = self._structure(first_batch, tokenizer)
      self._compile_steps(structure, first_batch)
      self._restore_or_init(structure, resume_step)
      self._open_outputs(tokenizer)
    except BaseException:
      self.close()  # the directory lock too: a refused start leaves the directory free
      raise

  # ----- starting: the named steps of __init__ -----
  def _configure(self, model, task, eval_model, eval_tasks, output_dir, settings, mesh,
                 print_fn):
    """Checks and stores the arguments (nothing touched yet)."""
    if not isinstance(task, TrainTask):
      raise TypeError(f'Loop: task must be one TrainTask, got {task!r}.')
    settings = LoopSettings() if settings is None else settings
    if not isinstance(settings, LoopSettings):
      raise TypeError(f'Loop: settings must be a LoopSettings, got {settings!r}.')
    eval_tasks = [eval_tasks] if isinstance(eval_tasks, EvalTask) else list(eval_tasks or ())
    for t in eval_tasks:
      if not isinstance(t, EvalTask):
        raise TypeError(f'Loop: eval_tasks must be EvalTasks, got {t!r}.')
    names = [t.name for t in eval_tasks]
    if len(set(names)) != len(names):
      raise ValueError(f'Loop: eval task names must differ, got {names}; pass EvalTask(name=).')
    # The held-out training loss is recorded as 'loss', like the train records.
    self._eval_metric_names = [
        metrics_log.eval_metric_names(t.metrics, t.metric_names, task.loss_layer, t.name)
        for t in eval_tasks]
    self._model = model
    self._eval_model = eval_model or model
    self._task = task
    self._eval_tasks = eval_tasks
    self._settings = settings
    self._output_dir = os.path.abspath(output_dir) if output_dir else None
    self._checkpoint_due = _every(settings.checkpoint_every)
    self._eval_due = _every(settings.eval_period)
    self._compute_dtype = settings.compute_jnp_dtype
    self._progress = metrics_log.Progress(settings.progress, settings.log_every, print_fn)
    self._mesh = self._make_mesh(mesh)
    self._init_rng, self._rng = jax.random.split(jax.random.key(settings.seed))
    self._step = 0
    self._compiled = set()  # 'train', eval task names: steps compiled in this process

  def _open_output_dir(self):
    """Locks output_dir and finds the step to resume from (None: start afresh)."""
    if not self._output_dir:
      return None
    # One trainer per directory, before anything in it is touched (RunLockedError).
    run_lock.acquire(self._output_dir)
    self._locked_dir = self._output_dir
    s = self._settings
    self._checkpointer = ckpt_lib.Checkpointer(
        self._output_dir, keep_checkpoints=s.keep_checkpoints, keep_best=s.keep_best,
        best_mode=s.best_mode, async_save=s.async_checkpointing)
    return self._checkpointer.resume_step(s.on_corrupt_checkpoint, self._progress.message)

  def _first_batch(self, resume_step):
    """Moves the training stream to the checkpoint's position; peeks at its next batch."""
    self._first_step = 1 if resume_step is None else resume_step + 1
    if resume_step is not None:
      self._task.stream.restore(self._checkpointer.read_meta(resume_step).get('data', {}))
    first_batch = self._task.stream.peek()
    for t in self._eval_tasks:
      t.stream.peek()  # an empty eval set fails now, not after the first training steps
    self._input_signature = self._signature(first_batch)
    return first_batch

  def _structure(self, first_batch, tokenizer):
    """Shapes and dtypes of (weights, state, opt_state), computed without running anything.

    Also checks the tokenizer, and the first batch's token and class ids, against the model.
    """
    weights, state = jax.eval_shape(
        lambda: self._model.init(self._input_signature, self._init_rng))
    opt_state = jax.eval_shape(self._task.optimizer.init, weights)
    batch_checks.check_tokenizer(self._model, weights, tokenizer)
    outputs = jax.eval_shape(lambda x, w, s: self._model.pure_fn(x, w, s, self._rng)[0],
                             shapes.to_structs(self._input_signature), weights, state)
    self._id_limits = batch_checks.id_limits(self._model, weights, outputs, first_batch)
    self._real_token_limit = batch_checks.real_token_limit(self._model)
    self._check_batch(first_batch, self._first_step)
    self._check_eval_model(weights, state)
    return weights, state, opt_state

  def _check_batch(self, batch, step):
    """DataError, on the host, for ids out of range or too many real tokens to compact."""
    batch_checks.check_id_ranges(batch, self._id_limits, step)
    batch_checks.check_real_tokens(batch, self._real_token_limit, step)

  def _compile_steps(self, structure, first_batch):
    """Builds the jitted train and eval steps and traces the train step on the first batch.

    Tracing the whole step (model and loss) now makes a shape or dtype error (a LayerError
    naming the layer and shapes) come before any file is written.
    """
    train_step = step_lib.make_train_step(self._model, self._task.loss_layer,
                                          self._task.optimizer, self._compute_dtype)
    if self._mesh is not None:
      train_step = distributed.keep_shardings(train_step, self._mesh)
    # Weights, state and optimizer state are donated on every backend (JAX implements
    # donation on CPU too), so CPU tests run the GPU's aliasing rules: after a step, only
    # the arrays it returned may be read.
    self._train_step = jax.jit(step_lib.skip_non_finite(train_step), donate_argnums=(0, 1, 2))
    jax.eval_shape(self._train_step, *structure, tuple(jnp.asarray(x) for x in first_batch),
                   self._rng, jnp.bool_(False))
    self._eval_steps = [jax.jit(step_lib.make_eval_step(self._eval_model, t.metrics,
                                                        self._compute_dtype))
                        for t in self._eval_tasks]

  def _restore_or_init(self, structure, resume_step):
    """The checkpoint's arrays (and step, rng) when resuming, else freshly initialized ones."""
    if resume_step is None:
      weights, state = self._model.init(self._input_signature, self._init_rng)
      opt_state = self._task.optimizer.init(weights)
    else:
      restored = self._checkpointer.restore(resume_step, self._model, *structure,
                                            sharding=self._replicated_sharding())
      weights, state, opt_state = restored['weights'], restored['state'], restored['opt_state']
      self._step, self._rng = restored['step'], restored['rng']
      self._progress.message(f'Resumed from the checkpoint at step {self._step} in '
                             f'{self._checkpointer.directory}.')
    self._weights, self._state, self._opt_state = self._place((weights, state, opt_state))
    self._stopped = self._no_bad_step_yet()
    self._eval_state = self._own_eval_state()
    self._last_saved = self._step if resume_step is not None else None

  def _open_outputs(self, tokenizer):
    """Saves the tokenizer and opens the metrics files (the first writes to output_dir)."""
    self._losses_since_checkpoint = []
    self._prefetch_error = None
    self._eval_results = {}
    self._history = []
    self.stopped_by = None  # 'SIGTERM' when the last run() stopped on that signal
    if not self._output_dir:
      return
    if tokenizer is not None:
      ckpt_lib.save_tokenizer(tokenizer, self._output_dir)
    self._metrics = metrics_log.MetricsWriter(self._output_dir, self._step,
                                              self._settings.tensorboard)

  # ----- properties -----
  @property
  def step(self):
    """The number of training steps done so far (including before a resume)."""
    return self._step

  @property
  def model(self):
    return self._model

  @property
  def eval_model(self):
    return self._eval_model

  @property
  def weights(self):
    return self._weights

  @property
  def state(self):
    return self._state

  @property
  def opt_state(self):
    return self._opt_state

  @property
  def output_dir(self):
    return self._output_dir

  @property
  def settings(self):
    return self._settings

  @property
  def history(self):
    """Records (dicts) of this process's train and eval metrics, in order."""
    return list(self._history)

  @property
  def mesh(self):
    return self._mesh

  # ----- running -----
  def run(self, n_steps=1, max_seconds=None):
    """Runs `n_steps` more training steps (evaluating and checkpointing on schedule).

    With `max_seconds`, stops early after the first step that ends that many seconds after
    the call began, then evaluates (if it did not just do so) and saves a checkpoint, so
    runs of equal wall-clock time can be compared and resumed. The last step of the call is
    always evaluated (with eval tasks) and checkpointed (with an output_dir). Train records
    carry 'elapsed_seconds' since the call began. On SIGTERM (preemption) it finishes the current
    step, saves a checkpoint and returns, with `stopped_by` set to 'SIGTERM'.

    Raises DivergedError if a step's loss, gradient, weights or optimizer state becomes
    NaN or infinite; the weights stay at the last good step and the last good checkpoint
    is kept.
    """
    if n_steps < 0:
      raise ValueError(f'Loop.run: n_steps must be >= 0, got {n_steps}.')
    if max_seconds is not None and max_seconds < 0:
      raise ValueError(f'Loop.run: max_seconds must be >= 0 or None, got {max_seconds}.')
    last_step = self._step + n_steps
    self.stopped_by = None
    self._progress.start(self._step + 1, n_steps)
    self._run_start = time.perf_counter()
    self._step_timer = step_timing.StepTimer(start=self._run_start)
    self._completions = step_timing.CompletionWatcher()
    try:
      with preemption.StopOnSignal() as signals:
        self._run_steps(last_step, max_seconds, signals)
        if self._output_dir and self._last_saved != self._step:
          self.save_checkpoint()
    finally:
      self._completions.close()
      self._progress.close()
      if self._checkpointer is not None:
        self._checkpointer.wait()
      if self._metrics is not None:
        self._metrics.flush()

  def _run_steps(self, last_step, max_seconds, signals):
    """`run`'s loop: launch each step, then check the one before it while it computes."""
    in_flight = None  # the last launched step, until its loss is checked (see _finish)
    for step in range(self._step + 1, last_step + 1):
      if in_flight is not None and self._prefetch_error is not None:
        self._finish(in_flight, last_step)  # the data error comes after it
        in_flight = None
      batch = self._next_batch()
      try:  # every batch's ids, on the host, before the device sees them
        self._check_batch(batch, step)
      except batch_checks.DataError:
        if in_flight is not None:
          self._finish(in_flight, last_step)   # the step before it is still recorded
        raise
      with self._compiling('train'):
        previous, in_flight = in_flight, self._launch(step, batch)
      # While the device computes the step: the next batch and the check of the step
      # before it.
      if step < last_step:
        self._prefetch_next_batch()
      if previous is not None:
        self._finish(previous, last_step)
      elapsed = time.perf_counter() - self._run_start
      out_of_time = max_seconds is not None and elapsed >= max_seconds
      # The last step of a run is evaluated too, so its checkpoint carries the held-out
      # metrics (keep_best ranks by them) and the run ends with its held-out loss.
      evaluate = bool(self._eval_tasks) and (self._eval_due(step) or out_of_time
                                             or step == last_step)
      save = bool(self._output_dir) and self._checkpoint_due(step)
      if not (evaluate or save or out_of_time or signals.requested or step == last_step):
        continue  # checked during the next step
      self._finish(in_flight, last_step)
      in_flight = None
      pause_start = time.perf_counter()  # no step in flight from here to the next launch
      if evaluate:
        self.run_evals()
      if save:
        self.save_checkpoint()
      if out_of_time:
        self._progress.message(f'step {step}: stopping after {elapsed:.0f} s '
                               f'(max_seconds={max_seconds}).')
        return
      if signals.requested:
        self.stopped_by = signals.requested
        self._progress.message(f'step {step}: {signals.requested} received; saving a '
                               'checkpoint and stopping (rerun to resume).')
        return
      self._step_timer.pause(time.perf_counter() - pause_start)

  def _launch(self, step, batch):
    """Starts train step `step` on `batch` (returns at once); the Loop keeps its outputs.

    The learning rate is read on the host while the step computes (see TrainTask).
    """
    timed = 'train' in self._compiled
    out, self._stopped = self._train_step(
        self._weights, self._state, self._opt_state, self._place_batch(batch),
        jax.random.fold_in(self._rng, step), self._stopped)
    self._weights, self._state, self._opt_state = out.weights, out.state, out.opt_state
    # `stopped` is computed from the new weights and optimizer state: ready at the step's end.
    self._completions.watch(step, (out.loss, self._stopped))
    return _Launched(step, batch, batch_checks.count_tokens(batch), out.loss,
                     out.gradient_norm, self._stopped, self._task.learning_rate(step), timed)

  def _finish(self, launched, last_step):
    """Waits for a launched step's loss, checks and records it.

    A bad step (non-finite loss, gradient, weights or optimizer state; see
    `train_step.skip_non_finite`) raises DivergedError. By then skip_non_finite has kept the
    weights from before that step (in this step and in any launched after it), so they are
    the last finite ones.

    The step's time (and tokens per second) is device time since the previous step's
    completion, less the Loop's pauses (see `step_timing`), not host time between looks,
    which depends on when the host looked. The step that compiled the train step has none:
    its launch held the compilation (and, on a backend that runs a step before the launch
    returns, the step itself), and its batch was read when the Loop started.
    """
    step = launched.step
    loss, gradient_norm, bad = jax.device_get(
        (launched.loss, launched.gradient_norm, launched.stopped))
    loss, gradient_norm = float(loss), float(gradient_norm)
    if bad:
      self._step = step - 1
      self._stopped = self._no_bad_step_yet()  # a later run() starts afresh from here
      self._diverged(step, loss, gradient_norm, launched.batch)
    self._step = step
    completed = self._completions.completed_at(step)
    step_time = self._step_timer.step_done(completed)
    values = {metrics_log.LOSS: loss, 'gradient_norm': gradient_norm}
    if launched.learning_rate is not None:
      values['learning_rate'] = launched.learning_rate
    if launched.timed:
      values['step_time'] = step_time
      values['tokens_per_second'] = launched.tokens / max(step_time, 1e-9)
    values['elapsed_seconds'] = completed - self._run_start
    self._record('train', step, values)
    self._progress.train_step(step, last_step, values)
    self._losses_since_checkpoint.append(loss)

  def _prefetch_next_batch(self):
    """Reads the next training batch ahead (a peek: checkpointed positions exclude it).

    A data error is kept and raised by `_next_batch`, where reading would have raised it,
    so the step in flight is still checked, recorded and checkpointed first.
    """
    try:
      self._task.stream.peek()
    except Exception as e:  # pylint: disable=broad-except
      self._prefetch_error = e

  def _next_batch(self):
    error, self._prefetch_error = self._prefetch_error, None
    if error is not None:
      raise error
    return next(self._task.stream)

  def _diverged(self, step, loss, gradient_norm, batch=()):
    if self._checkpointer is not None:
      self._checkpointer.wait()
      kept = self._checkpointer.latest_step()
      where = (f'the last good checkpoint (step {kept}) is kept in {self._checkpointer.directory}'
               if kept is not None else 'no checkpoint was saved before it')
    else:
      where = 'no output_dir, so nothing was saved'
    bad = batch_checks.non_finite_entries(batch)
    if bad:
      cause = (f'The batch of step {step} has non-finite values in {", ".join(bad)}: fix or '
               'filter the input data.')
    else:
      cause = ('Try a lower learning rate, gradient clipping (clip_gradient_norm=1.0) or a '
               'learning-rate warmup.')
    if not math.isfinite(loss):
      what = f'the loss is {loss}'
    elif not math.isfinite(gradient_norm):
      what = f'the gradient norm is {gradient_norm} (the loss is {loss:.4g})'
    else:
      what = (f'the update made the weights or optimizer state non-finite (loss {loss:.4g}, '
              f'gradient norm {gradient_norm:.4g})')
    message = f'Training stopped: {what} at step {step}; {where}. {cause}'

    self._progress.message(message)
    if self._metrics is not None:
      self._metrics.write('train', step, {metrics_log.LOSS: loss, 'gradient_norm': gradient_norm,
                                          'diverged': 1})
    raise DivergedError(message)

  def run_evals(self):
    """Evaluates every EvalTask now; returns {'<task>/<metric>': value}.

    The metric that computes the training loss is named 'loss' (e.g. 'eval/loss'; see
    `metrics_log.eval_metric_names`), the others by their EvalTask names.
    """
    results = {}
    # The training state as it is now (the arrays the last step returned: earlier ones were
    # donated to it), unless the eval model's state differs in structure.
    eval_state = self._state if self._eval_state is None else self._eval_state
    for task, names, eval_step in zip(self._eval_tasks, self._eval_metric_names,
                                      self._eval_steps):
      if task.stream.restartable:
        task.stream.reset()
      totals = np.zeros(len(task.metrics))
      rng = jax.random.fold_in(jax.random.fold_in(self._rng, self._step), 1 << 30)
      for i in range(task.n_eval_batches):
        batch = next(task.stream)
        batch_checks.check_real_tokens(batch, self._real_token_limit, self._step,
                                       f'{task.name} batch {i} at step')
        with self._compiling(task.name):
          values = eval_step(self._weights, eval_state, self._place_batch(batch),
                             jax.random.fold_in(rng, i))
        totals += np.array([float(v) for v in values])
      means = {n: float(v) for n, v in zip(names, totals / task.n_eval_batches)}
      self._record(task.name, self._step, means)
      self._progress.message(f'step {self._step} {task.name}: '
                             f'{metrics_log.format_values(means)}')
      results.update({f'{task.name}/{n}': v for n, v in means.items()})
    self._eval_results = results
    return results

  def save_checkpoint(self):
    """Starts saving a checkpoint of the current step to output_dir (async)."""
    if self._checkpointer is None:
      raise ValueError('Loop.save_checkpoint: this Loop has no output_dir.')
    metrics = dict(self._eval_results)
    if self._losses_since_checkpoint:
      metrics[metrics_log.LOSS] = float(np.mean(self._losses_since_checkpoint))
    keep_best = self._settings.keep_best
    if keep_best is not None and keep_best not in metrics:
      self._progress.message(f'step {self._step}: keep_best metric {keep_best!r} not '
                             f'measured at this checkpoint (have {sorted(metrics)}).')
    self._checkpointer.save(self._step, self._model, self._weights, self._state,
                            self._opt_state, self._rng, self._task.stream.position(), metrics)
    self._last_saved = self._step
    self._losses_since_checkpoint = []
    self._eval_results = {}

  def close(self):
    """Waits for pending checkpoints, closes files and releases the output_dir's lock.

    Each is done even if one before it fails (e.g. a full disk); the first failure is then
    raised.
    """
    checkpointer, metrics, locked_dir = self._checkpointer, self._metrics, self._locked_dir
    self._checkpointer = self._metrics = self._locked_dir = None
    steps = [checkpointer and checkpointer.close, metrics and metrics.close,
             locked_dir and (lambda: run_lock.release(locked_dir))]
    failure = None
    for step in steps:
      try:
        if step:
          step()
      except Exception as e:  # pylint: disable=broad-except
        failure = failure or e
    if failure is not None:
      raise failure

  def plot(self, path=None):
    """Saves a PNG of the loss curves (train and eval) from metrics.jsonl; returns its path."""
    from plait.supervised import plot  # pylint: disable=g-import-not-at-top
    if self._output_dir is None:
      raise ValueError('Loop.plot: needs an output_dir (it plots metrics.jsonl).')
    if self._metrics is not None:
      self._metrics.flush()
    return plot.plot_metrics(self._output_dir, path)

  # ----- helpers -----
  @contextlib.contextmanager
  def _compiling(self, what):
    """Around the first call of a step: says that it compiles, and how long that took.

    The first call of a jitted step traces and compiles it before launching it (a minute
    for a large model without the persistent compilation cache), so the user is told.
    """
    if what in self._compiled:
      yield
      return
    name = 'train step' if what == 'train' else f'{what} step'
    self._progress.message(f'compiling the {name}…')
    start = time.perf_counter()
    yield
    self._compiled.add(what)
    self._progress.message(f'compiled the {name} in {time.perf_counter() - start:.1f} s.')

  def _record(self, split, step, values):
    self._history.append({'split': split, 'step': step, **values})
    if self._metrics is not None:
      self._metrics.write(split, step, values)

  def _signature(self, batch):
    n = self._model.n_in
    if len(batch) < n:
      raise ValueError(f'Loop: {self._model.name} takes {n} inputs but training batches have '
                       f'only {len(batch)} entries ({shapes.describe(batch)}).')
    sig = shapes.signature(tuple(batch[:n]))
    return sig[0] if n == 1 else sig

  def _check_eval_model(self, weights, state):
    """The eval model must take the training model's weights (same tree).

    Notes whether its state differs in structure from the training model's (then it
    evaluates with its own state, see `_own_eval_state`).
    """
    self._eval_has_own_state = False
    if self._eval_model is self._model:
      return
    eval_weights, eval_state = jax.eval_shape(
        lambda: self._eval_model.init(self._input_signature, jax.random.key(0)))
    if jax.tree_util.tree_structure(eval_weights) != jax.tree_util.tree_structure(weights):
      raise ValueError(f'Loop: eval_model {self._eval_model.name} has different weights from '
                       f'model {self._model.name}; build both with the same settings except mode.')
    self._eval_has_own_state = (jax.tree_util.tree_structure(eval_state)
                                != jax.tree_util.tree_structure(state))

  def _own_eval_state(self):
    """None when evaluation reads the training state, else the eval model's own state.

    Never the training `state` itself: the first train step donates those arrays.
    """
    if not self._eval_has_own_state:
      return None
    return self._place(self._eval_model.init(self._input_signature, jax.random.key(0))[1])

  def _make_mesh(self, mesh):
    if mesh == 'auto':
      return distributed.default_mesh() if jax.device_count() > 1 else None
    if mesh is not None and distributed.DATA_AXIS not in mesh.axis_names:
      raise ValueError(f"Loop: the mesh needs a '{distributed.DATA_AXIS}' axis, "
                       f'got axes {mesh.axis_names}.')
    return mesh

  def _no_bad_step_yet(self):
    """skip_non_finite's flag, False, laid out as the step returns it (no recompile)."""
    return self._place(jnp.zeros((), jnp.bool_))

  def _replicated_sharding(self):
    return distributed.replicated(self._mesh) if self._mesh is not None else None

  def _place(self, tree):
    """On the mesh, or committed to the default device: restored checkpoints arrive
    committed, and a step called with committed and uncommitted arrays in turn compiles twice.
    """
    if self._mesh is None:
      return jax.device_put(tree, jax.devices()[0])
    return distributed.place(tree, self._mesh)

  def _place_batch(self, batch):
    if self._mesh is None:
      return tuple(jnp.asarray(x) for x in batch)
    return distributed.shard_batch(batch, self._mesh)
