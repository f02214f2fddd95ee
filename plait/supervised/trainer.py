"""The gin-configured trainer: `plait-train` and `python -m plait.supervised.trainer`.

  plait-train --config_file=reformer_duplication_tiny.gin [--config_file=...] \\
      [--config="ReformerLM.d_model = 128"] --output_dir=/tmp/run [--steps=N] [--overwrite]

A config file is found as given or by name among the shipped configs
(`plait/rl_free_configs/`). A config binds `train`'s arguments (what to train, on what,
how long) and the Loop's settings (`LoopSettings`: checkpoints, evaluation, dtype, seed,
logging), e.g.

  train.model = @ReformerLM          # called with mode='train' (and mode='eval' for eval)
  ReformerLM.d_model = 256
  train.inputs = @lm_inputs()        # a zero-argument callable returning batches
  lm_inputs.sequence_length = 1024
  train.optimizer = @Adam
  train.lr_schedule = @multifactor()
  train.steps = 1000
  LoopSettings.checkpoint_every = 100

The effective config (the files, then --config bindings, then --steps as `train.steps`) is
saved to `output_dir/config.gin`; `plait-train --config_file=output_dir/config.gin` reruns
the run. Training resumes from the latest checkpoint in output_dir; if output_dir was
trained with a different config the trainer refuses (showing the difference) unless
`--overwrite`, which deletes the old run's checkpoints and metrics first.

If the latest checkpoint is damaged (a file differs from its manifest) the trainer
refuses to start, naming the file; `--fallback_to_previous_checkpoint` moves damaged
checkpoints to output_dir/corrupt_checkpoints/ and resumes from the newest intact one.

Every user error is one line on stderr and a non-zero exit, before anything in output_dir
is written (a directory this run created is removed again): exit 2 for the command line and
the config (a missing file, a gin error, a value a configurable refuses), exit 1 for data,
model/checkpoint pairing and the machine. `--debug` shows the traceback instead. JAX and
the models are imported only once the arguments are read, so `--help` answers at once.
"""
import argparse
import dataclasses
import logging
import os
import re
import shutil
import sys
import threading

import gin

from plait.supervised import arg_types
from plait.supervised import gin_config
from plait.supervised import metrics_log
from plait.supervised import plot as plot_lib
from plait.supervised import run_config
from plait.supervised import run_lock
from plait.supervised.gin_config import ConfigError, is_bound, parse_config  # pylint: disable=unused-import
from plait.supervised.loop_settings import LoopSettings
from plait.supervised.streams import DataError

CONFIG_FILE = run_config.CONFIG_FILE
# Bindings that may change between a run and its resumption.
_RESUMABLE_BINDINGS = ('train.steps',)


class ConfigMismatchError(ValueError):
  """output_dir holds a run trained with a different config.

  Attributes: output_dir, and differences, the differing binding lines (the saved run's
  prefixed '-', this run's '+'), so callers can word their own advice; a message shows the
  first SHOWN of them.
  """
  SHOWN = 40

  def __init__(self, output_dir, differences):
    self.output_dir, self.differences = output_dir, list(differences)
    super().__init__(
        f'{output_dir} was trained with a different config; refusing to mix runs. '
        f'Differences ({os.path.join(output_dir, CONFIG_FILE)} -, this run +):\n'
        + '\n'.join(self.differences[:self.SHOWN]) +
        '\nUse another --output_dir, or pass --overwrite to delete the old run and start '
        'afresh.')


def _run_outputs():
  """What --overwrite deletes (plait's own outputs only, never other files)."""
  from plait.supervised import checkpoints as ckpt_lib  # pylint: disable=g-import-not-at-top
  return (ckpt_lib.CHECKPOINT_DIR, ckpt_lib.TOKENIZER_DIR, metrics_log.METRICS_FILE,
          metrics_log.TENSORBOARD_DIR, CONFIG_FILE, plot_lib.PLOT_FILE)


def _build(factory, **kwargs):
  """Calls a configured constructor, or returns an already built object."""
  from plait.layers import base  # pylint: disable=g-import-not-at-top
  if isinstance(factory, base.Layer) or not callable(factory):
    return factory
  return factory(**kwargs)


def _open_data(inputs, what):
  """(zero-arg callable giving an iterator, tokenizer or None) from a configured `inputs`.

  Accepts a function returning an iterator, or one returning such a callable (e.g.
  `@lm_inputs` gives a function that returns an LMInputs, itself a zero-arg callable).
  Opening the data (missing files, an unprepared TFDS data set) raises DataError.
  """
  if inputs is None:
    return None, None
  if hasattr(inputs, '__next__'):
    return inputs, getattr(inputs, 'tokenizer', None)
  if not callable(inputs):
    raise TypeError(f'train: {what} must be a zero-argument callable returning batches '
                    f'(e.g. train.{what} = @lm_inputs()), got {inputs!r}.')
  made = _data_errors(inputs, what)()
  if callable(made) and not hasattr(made, '__next__') and not hasattr(made, '__iter__'):
    return _data_errors(made, what), getattr(made, 'tokenizer', None)
  return (_data_errors(inputs, what),
          getattr(made, 'tokenizer', None) or getattr(inputs, 'tokenizer', None))


def _data_errors(open_data, what):
  """`open_data` whose failure to open the data (OSError, ValueError) is a DataError."""
  def opened():
    try:
      return open_data()
    except DataError:
      raise
    except (OSError, ValueError) as e:
      if isinstance(e, ValueError) and _GIN_CALL.search(str(e)):  # a refused value: config
        raise
      raise DataError(f'train.{what}: {without_gin_location(e)}') from e
  return opened


def _schedule(lr_schedule):
  """A schedule, from a schedule or a configured factory with no required arguments."""
  import inspect  # pylint: disable=g-import-not-at-top
  if lr_schedule is None or not callable(lr_schedule):
    return lr_schedule
  try:
    params = inspect.signature(lr_schedule).parameters.values()
  except (TypeError, ValueError):
    return lr_schedule
  required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                       p.POSITIONAL_OR_KEYWORD)]
  return lr_schedule() if not required else lr_schedule


def check_config(output_dir, config_text, overwrite=False):
  """Refuses to reuse an output_dir trained with a different config (unless overwrite);
  warns on stderr when it holds checkpoints but no config.gin (nothing to compare with).

  Configs are compared by their values, a binding missing on one side by the code's
  default, so a run saved by an older plait (which listed every default) resumes. With `overwrite`, deletes the previous run's outputs
  (checkpoints, metrics, TensorBoard files, config.gin, tokenizer) so training starts afresh.
  """
  if overwrite:
    for name in _run_outputs():
      target = os.path.join(output_dir, name)
      if os.path.isdir(target):
        shutil.rmtree(target)
      elif os.path.exists(target):
        os.remove(target)
    return
  old = run_config.read(output_dir)   # saved by any plait version, in today's names
  if old is None:
    from plait.supervised import checkpoints as ckpt_lib  # pylint: disable=g-import-not-at-top
    if ckpt_lib.has_checkpoint(output_dir):   # plait-train writes config.gin before step 1
      print(f'plait: warning: {output_dir} holds checkpoints but no {CONFIG_FILE}: resuming '
            'from them with this config, which nothing can check against the one that '
            f'trained them (it is saved as {CONFIG_FILE} now). If they came from another run, '
            'stop and use another --output_dir, or --overwrite to start afresh.',
            file=sys.stderr, flush=True)
    return
  diff = gin_config.differences(old, config_text, ignore=_RESUMABLE_BINDINGS)
  if diff:
    raise ConfigMismatchError(output_dir, diff)


# LoopSettings as gin binds it (`LoopSettings.checkpoint_every = 500` in a config).
_MODULE = 'plait.supervised'   # gin's module for train and LoopSettings
ConfiguredLoopSettings = gin.external_configurable(LoopSettings, module=_MODULE)
_LOOP_SETTINGS_SELECTOR = f'{_MODULE}.{LoopSettings.__name__}'


@gin.configurable(denylist=['output_dir', 'settings', 'overwrite',
                            'fallback_to_previous_checkpoint', 'max_seconds'],
                  module=_MODULE)
def train(output_dir, model=gin.REQUIRED, inputs=gin.REQUIRED, eval_inputs=None,
          loss=None, metrics=None, optimizer=None, lr_schedule=None, steps=1000,
          n_eval_batches=10, tokenizer=None, plot=True, settings=None, overwrite=False,
          fallback_to_previous_checkpoint=False, max_seconds=None):
  """Trains `model` on `inputs` in `output_dir`, resuming from its latest checkpoint.

  Args:
    output_dir: training directory (checkpoints, metrics.jsonl, config.gin, ...).
    model: a model constructor taking `mode` (called with 'train' and 'eval').
    inputs: zero-argument callable returning an iterator of training batches.
    eval_inputs: the same for evaluation batches (None: no evaluation).
    loss: loss layer constructor (or layer); None: CrossEntropyLoss.
    metrics: eval metric layer constructors (or layers); None: (CrossEntropyLoss, Accuracy).
    optimizer: optimizer factory from plait.supervised.optimizers (or optax
      transformation); None: Adam.
    lr_schedule: a schedule, or a schedule factory with no required arguments.
    steps: total training steps (including those before a resume).
    n_eval_batches: batches per evaluation.
    tokenizer: saved next to checkpoints; default: the `inputs`' `.tokenizer` if any.
    plot: write output_dir/loss.png at the end.
    settings: a LoopSettings; default: `LoopSettings()` with the config's bindings.
    overwrite: delete a previous run in output_dir instead of refusing a changed config.
    fallback_to_previous_checkpoint: if the latest checkpoint is damaged, set it aside and
      resume from the previous intact one (LoopSettings.on_corrupt_checkpoint='previous').
    max_seconds: stop after this much training wall-clock time (evaluating and saving a
      checkpoint first), even if `steps` is not reached; None: no limit.

  Raises ConfigError when a configured constructor refuses its values or a binding would
  have no effect (nothing written; see `_check_bindings_used`),
  DataError when the data cannot be opened; the Loop's errors as it raises them. If
  output_dir did not exist and training never started, it is removed again.

  Returns:
    The Loop (closed).
  """
  settings_given = settings is not None
  settings = ConfiguredLoopSettings() if settings is None else settings
  if fallback_to_previous_checkpoint:
    settings = dataclasses.replace(settings, on_corrupt_checkpoint='previous')
  parts = _build_parts(model, inputs, eval_inputs, loss, metrics, optimizer, lr_schedule,
                       n_eval_batches)
  _check_bindings_used(settings_given)
  created = not os.path.exists(output_dir)
  with run_lock.held(output_dir):  # one trainer per directory, before --overwrite deletes
    try:
      loop = _start(output_dir, parts, tokenizer, settings, overwrite)
    except BaseException:
      if created:  # made by this run (we hold its lock) and nothing trained: leave no trace
        shutil.rmtree(output_dir, ignore_errors=True)
      raise
    try:
      loop.run(max(0, steps - loop.step), max_seconds=max_seconds)
    except BaseException as error:
      try:
        loop.close()
      except Exception as e:  # pylint: disable=broad-except
        # Closing after a failure often fails the same way (a full disk): the run's own
        # error is the one to report.
        error.add_note(f'Closing the run afterwards failed too: {e!r}')
      raise
    loop.close()
  if plot and loop.history:
    plot_lib.plot_metrics(output_dir)
  return loop


# Raised by a constructor refusing a configured value (d_model not divisible by n_heads, a
# string for a number, a required argument left unbound); other errors are bugs: tracebacks.
_VALUE_ERRORS = (ValueError, TypeError, KeyError)
_GIN_CALL = re.compile(r"\n\s*In call to configurable '([^']+)'")


def _built(what, make):
  """make(); a value error becomes a ConfigError naming the configurables called (or `what`)."""
  try:
    return make()
  except _VALUE_ERRORS as e:
    if isinstance(e, DataError):
      raise
    chain = ' <- '.join(_GIN_CALL.findall(str(e))) or what
    raise ConfigError(f'{chain}: {type(e).__name__}: {without_gin_location(e)}') from e


def _build_parts(model, inputs, eval_inputs, loss, metrics, optimizer, lr_schedule,
                 n_eval_batches):
  """Models, data and tasks built from the config; nothing is written."""
  from plait.layers import metrics as metric_layers  # pylint: disable=g-import-not-at-top
  from plait.supervised import optimizers  # pylint: disable=g-import-not-at-top
  from plait.supervised.tasks import EvalTask, TrainTask  # pylint: disable=g-import-not-at-top
  loss = metric_layers.CrossEntropyLoss if loss is None else loss
  metrics = (metric_layers.CrossEntropyLoss, metric_layers.Accuracy) if metrics is None else metrics
  optimizer = optimizers.Adam if optimizer is None else optimizer
  train_model = _built('train.model', lambda: _build(model, mode='train'))
  eval_model = _built('train.model', lambda: _build(model, mode='eval'))
  train_data, data_tokenizer = _built('train.inputs', lambda: _open_data(inputs, 'inputs'))
  eval_data, _ = _built('train.eval_inputs', lambda: _open_data(eval_inputs, 'eval_inputs'))
  task = _built('train', lambda: TrainTask(train_data, _build(loss), optimizer,
                                           _schedule(lr_schedule)))
  eval_tasks = []
  if eval_data is not None:
    eval_tasks.append(_built('train.metrics', lambda: EvalTask(
        eval_data, [_build(m) for m in metrics], n_eval_batches=n_eval_batches)))
  return dict(train_model=train_model, eval_model=eval_model, task=task,
              eval_tasks=eval_tasks, data_tokenizer=data_tokenizer)


def _check_bindings_used(settings_given):
  """ConfigError naming every binding nothing has used once the parts are built: gin only
  configures what it calls, so a binding on a layer a model builds itself has no effect.

  What a Python caller gives train() overrides the config as the caller means to: a `train.*`
  binding of an argument it passed is not checked, nor are the bindings of the configurable
  that binding references (benchmarks/lra.py passes data it made, or reuses, from
  `train.inputs = @lra_listops_inputs`), nor `LoopSettings.*` when `settings` is given
  (plait-train gives settings made from those bindings, and no train argument).
  """
  passed = [b.split('.', 1)[1] for b in gin_config.unused_bindings() if b.startswith('train.')]
  ignore = {_LOOP_SETTINGS_SELECTOR} if settings_given else set()
  for param in passed:
    value = gin.query_parameter(f'train.{param}')
    if isinstance(value, gin.config.ConfigurableReference):
      ignore.add(value.config_key[1])
  unused = [b for b in gin_config.unused_bindings(ignore) if not b.startswith('train.')]
  if unused:
    raise ConfigError(
        f'{len(unused)} binding(s) would have no effect: {", ".join(unused)}. gin sets only '
        'what the config calls (train, LoopSettings and the configurables referenced with '
        '@); layers inside a model are built by the model, so set them through the model\'s '
        'own arguments (e.g. TransformerEncoder.positional, not PositionalEncoding.kind; '
        'see docs/training.md, "Unused bindings").')


def _start(output_dir, parts, tokenizer, settings, overwrite):
  """Checks output_dir's config and starts the Loop; config.gin is written after its checks.

  The Loop checks data, model and checkpoint before writing anything.
  """
  from plait.supervised.training import Loop  # pylint: disable=g-import-not-at-top
  config_text = gin_config.effective_config()
  check_config(output_dir, config_text, overwrite)
  loop = Loop(parts['train_model'], parts['task'], eval_model=parts['eval_model'],
              eval_tasks=parts['eval_tasks'], output_dir=output_dir, settings=settings,
              tokenizer=tokenizer or parts['data_tokenizer'])
  _write_if_changed(os.path.join(output_dir, CONFIG_FILE), config_text)
  return loop


def _write_if_changed(path, text):
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == text:
        return
  with open(path, 'w') as f:
    f.write(text)


def without_gin_location(error):
  """An error's message without the "In call to configurable 'train'" lines gin adds."""
  return str(error).split("\n  In call to configurable")[0]


def _exit_code(error):
  """plait-train's exit code for a user error (see docs/reliability.md), None for a bug."""
  if isinstance(error, ConfigError):
    return 2
  run_errors = [ConfigMismatchError, run_config.DamagedConfigError, DataError,
                run_lock.RunLockedError, OSError]
  # Errors of modules not imported yet cannot have been raised (and importing them is slow).
  for module, name in (('plait.layers.base', 'LayerError'),
                       ('plait.supervised.checkpoints', 'CheckpointError'),
                       ('plait.supervised.training', 'DivergedError')):
    if module in sys.modules:
      run_errors.append(getattr(sys.modules[module], name))
  return 1 if isinstance(error, tuple(run_errors)) else None


def _parser():
  parser = argparse.ArgumentParser(
      prog='plait-train', description='Train a plait model from gin configs.')
  parser.add_argument('--config_file', action='append', default=[],
                      help='a gin file, as a path or the name of a shipped config in '
                      'plait/rl_free_configs/ (repeatable; later files override earlier ones)')
  parser.add_argument('--config', action='append', default=[],
                      help='a gin binding, e.g. "train.steps = 100" (repeatable)')
  parser.add_argument('--output_dir', required=True, help='training directory')
  parser.add_argument('--steps', type=arg_types.whole_number(0), default=None,
                      help='total training steps (recorded in config.gin as train.steps)')
  parser.add_argument('--max_seconds', type=float, default=None,
                      help='stop after this many seconds of training (evaluates and saves '
                      'a checkpoint first)')
  parser.add_argument('--overwrite', action='store_true',
                      help='delete a previous run in output_dir trained with another config')
  parser.add_argument('--fallback_to_previous_checkpoint', action='store_true',
                      help='if the latest checkpoint is damaged, resume from the previous one')
  parser.add_argument('--compilation_cache_dir', default=None,
                      help="JAX's persistent compilation cache, so a resumed run and "
                      'plait-decode reuse compiled programs (default: $PLAIT_COMPILATION_CACHE, '
                      "else xla/ in plait's cache dir, e.g. ~/.cache/plait/xla; 'none': off)")
  parser.add_argument('--debug', action='store_true',
                      help='show the traceback of an error instead of its one-line message')
  return parser


class _OneLineLogs(logging.Filter):
  """Library log records (orbax logs through absl) as their first line, no traceback: the
  error they describe reaches plait-train as an exception, said once in its own line."""

  def filter(self, record):
    record.msg, record.args = record.getMessage().split('\n', 1)[0], ()
    record.exc_info = record.exc_text = record.stack_info = None
    return True


def _quiet_while_exiting():
  """After an error is reported: nothing more from library threads as the process ends (e.g.
  orbax's save threads, whose event loops are gone, log 'Event loop is closed' tracebacks)."""
  logging.disable(logging.CRITICAL)
  threading.excepthook = lambda unused_args: None
  sys.unraisablehook = lambda unused_args: None


def main(argv=None):
  args = _parser().parse_args(argv)
  if not args.debug:
    logging.getLogger('absl').addFilter(_OneLineLogs())
  bindings = list(args.config)
  if args.steps is not None:  # a binding, so config.gin records it
    bindings.append(f'train.steps = {args.steps}')
  try:
    gin.clear_config()  # a second call in one process (a notebook) starts from no bindings
    parse_config(args.config_file, bindings)
    settings = _built('LoopSettings', ConfiguredLoopSettings)
    from plait.supervised import compilation_cache  # pylint: disable=g-import-not-at-top
    try:
      compilation_cache.enable(args.compilation_cache_dir)
    except OSError as e:
      raise ConfigError(f'--compilation_cache_dir: {e}') from e
    loop = train(args.output_dir, settings=settings, overwrite=args.overwrite,
                 fallback_to_previous_checkpoint=args.fallback_to_previous_checkpoint,
                 max_seconds=args.max_seconds)
  except Exception as e:  # pylint: disable=broad-except
    code = _exit_code(e)
    if code is None or args.debug:
      raise
    message = without_gin_location(e)
    if isinstance(e, ConfigError):
      message = f'bad config: {message}'
    elif isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
      message += ' (the run stopped; its last complete checkpoint, if any, is kept)'
    print(f'plait-train: {message}', file=sys.stderr, flush=True)
    _quiet_while_exiting()
    return code
  if loop.stopped_by == 'SIGTERM':  # preempted: checkpoint saved; exit as killed by SIGTERM
    print(f'plait-train: stopped by SIGTERM at step {loop.step}; the checkpoint is saved, '
          'rerun the same command to resume.', file=sys.stderr)
    return 128 + 15
  return 0


if __name__ == '__main__':
  sys.exit(main())
