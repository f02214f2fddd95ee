"""The gin-configured trainer: `plait-train` and `python -m plait.supervised.trainer`.

  plait-train --config_file=reformer_lm.gin [--config_file=...] \\
      [--config="ReformerLM.d_model = 128"] --output_dir=/tmp/run [--steps=N] [--overwrite]

A config binds `train`'s arguments (what to train, on what, how long) and the Loop's
settings (`LoopSettings`: checkpoints, evaluation, dtype, seed, logging), e.g.

  train.model = @ReformerLM          # called with mode='train' (and mode='eval' for eval)
  ReformerLM.d_model = 256
  train.inputs = @lm_inputs()        # a zero-argument callable returning batches
  lm_inputs.sequence_length = 1024
  train.optimizer = @Adam
  train.lr_schedule = @multifactor()
  train.steps = 1000
  LoopSettings.checkpoint_every = 100

The operative config is saved to `output_dir/config.gin`. Training resumes from
the latest checkpoint in output_dir; if output_dir was trained with a different
config the trainer refuses (showing the difference) unless `--overwrite`, which
deletes the old run's checkpoints and metrics first.

If the latest checkpoint is damaged (a file differs from its manifest) the trainer
refuses to start, naming the file; `--fallback_to_previous_checkpoint` moves damaged
checkpoints to output_dir/corrupt_checkpoints/ and resumes from the newest intact one.
Every bad input (config, data, model/checkpoint pairing, vocabulary) is reported on
stderr with a non-zero exit code before anything in output_dir is written.
"""
import argparse
import dataclasses
import difflib
import inspect
import os
import re
import shutil
import sys

import gin

from plait import configurables
from plait.layers import base
from plait.layers.base import LayerError
from plait.layers import metrics as metric_layers
from plait.supervised import arg_types
from plait.supervised import checkpoints as ckpt_lib
from plait.supervised import compilation_cache
from plait.supervised import metrics_log
from plait.supervised import optimizers
from plait.supervised import plot as plot_lib
from plait.supervised import run_config
from plait.supervised import run_lock
from plait.supervised.loop_settings import LoopSettings
from plait.supervised.streams import DataError
from plait.supervised.tasks import EvalTask, TrainTask
from plait.supervised.training import DivergedError, Loop

CONFIG_FILE = run_config.CONFIG_FILE
# Bindings that may change between a run and its resumption.
_RESUMABLE_BINDINGS = ('train.steps',)
# What --overwrite deletes (plait's own outputs only, never other files).
_RUN_OUTPUTS = (ckpt_lib.CHECKPOINT_DIR, ckpt_lib.TOKENIZER_DIR, metrics_log.METRICS_FILE,
                metrics_log.TENSORBOARD_DIR, CONFIG_FILE, plot_lib.PLOT_FILE)


class ConfigMismatchError(ValueError):
  """output_dir holds a run trained with a different config."""


def _build(factory, **kwargs):
  """Calls a configured constructor, or returns an already built object."""
  if isinstance(factory, base.Layer) or not callable(factory):
    return factory
  return factory(**kwargs)


def _open_data(inputs, what):
  """(zero-arg callable giving an iterator, tokenizer or None) from a configured `inputs`.

  Accepts a function returning an iterator, or one returning such a callable (e.g.
  `@lm_inputs` gives a function that returns an LMInputs, itself a zero-arg callable).
  """
  if inputs is None:
    return None, None
  if hasattr(inputs, '__next__'):
    return inputs, getattr(inputs, 'tokenizer', None)
  if not callable(inputs):
    raise TypeError(f'train: {what} must be a zero-argument callable returning batches '
                    f'(e.g. train.{what} = @lm_inputs()), got {inputs!r}.')
  made = inputs()
  if callable(made) and not hasattr(made, '__next__') and not hasattr(made, '__iter__'):
    return made, getattr(made, 'tokenizer', None)
  return inputs, getattr(made, 'tokenizer', None) or getattr(inputs, 'tokenizer', None)


def _schedule(lr_schedule):
  """A schedule, from a schedule or a configured factory with no required arguments."""
  if lr_schedule is None or not callable(lr_schedule):
    return lr_schedule
  try:
    params = inspect.signature(lr_schedule).parameters.values()
  except (TypeError, ValueError):
    return lr_schedule
  required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                       p.POSITIONAL_OR_KEYWORD)]
  return lr_schedule() if not required else lr_schedule


def _config_lines(text):
  """The bindings of a config text, sorted (gin's order of sections does not matter)."""
  lines = []
  for line in text.splitlines():
    line = line.strip()
    if line and not line.startswith('#') and not line.startswith(_RESUMABLE_BINDINGS):
      lines.append(line)
  return sorted(lines)


def check_config(output_dir, config_text, overwrite=False):
  """Refuses to reuse an output_dir trained with a different config (unless overwrite).

  With `overwrite`, deletes the previous run's outputs (checkpoints, metrics,
  TensorBoard files, config.gin, tokenizer) so training starts afresh.
  """
  path = os.path.join(output_dir, CONFIG_FILE)
  if overwrite:
    for name in _RUN_OUTPUTS:
      target = os.path.join(output_dir, name)
      if os.path.isdir(target):
        shutil.rmtree(target)
      elif os.path.exists(target):
        os.remove(target)
    return
  old = run_config.read(output_dir)   # saved by any plait version, in today's names
  if old is None or _config_lines(old) == _config_lines(config_text):
    return
  diff = list(difflib.unified_diff(_config_lines(old), _config_lines(config_text),
                                   f'{path} (previous run)', 'this run', lineterm='', n=0))
  raise ConfigMismatchError(
      f'{output_dir} was trained with a different config; refusing to mix runs. '
      f'Differences:\n' + '\n'.join(diff[:40]) +
      '\nUse another --output_dir, or pass --overwrite to delete the old run and start afresh.')


# LoopSettings as gin binds it (`LoopSettings.checkpoint_every = 500` in a config).
ConfiguredLoopSettings = gin.external_configurable(LoopSettings, module='plait.supervised')


@gin.configurable(denylist=['output_dir', 'settings', 'overwrite',
                            'fallback_to_previous_checkpoint', 'max_seconds'],
                  module='plait.supervised')
def train(output_dir, model=gin.REQUIRED, inputs=gin.REQUIRED, eval_inputs=None,
          loss=metric_layers.CrossEntropyLoss,
          metrics=(metric_layers.CrossEntropyLoss, metric_layers.Accuracy),
          optimizer=optimizers.Adam, lr_schedule=None, steps=1000, n_eval_batches=10,
          tokenizer=None, plot=True, settings=None, overwrite=False,
          fallback_to_previous_checkpoint=False, max_seconds=None):
  """Trains `model` on `inputs` in `output_dir`, resuming from its latest checkpoint.

  Args:
    output_dir: training directory (checkpoints, metrics.jsonl, config.gin, ...).
    model: a model constructor taking `mode` (called with 'train' and 'eval').
    inputs: zero-argument callable returning an iterator of training batches.
    eval_inputs: the same for evaluation batches (None: no evaluation).
    loss: loss layer constructor (or layer).
    metrics: eval metric layer constructors (or layers).
    optimizer: optimizer factory from plait.supervised.optimizers (or optax transformation).
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

  Returns:
    The Loop (closed).
  """
  settings = ConfiguredLoopSettings() if settings is None else settings
  if fallback_to_previous_checkpoint:
    settings = dataclasses.replace(settings, on_corrupt_checkpoint='previous')
  with run_lock.held(output_dir):  # one trainer per directory, before --overwrite deletes
    loop = _start(output_dir, model, inputs, eval_inputs, loss, metrics, optimizer,
                  lr_schedule, n_eval_batches, tokenizer, settings, overwrite)
    try:
      loop.run(max(0, steps - loop.step), max_seconds=max_seconds)
    finally:
      loop.close()
    if plot and loop.history:
      plot_lib.plot_metrics(output_dir)
    return loop


def _start(output_dir, model, inputs, eval_inputs, loss, metrics, optimizer, lr_schedule,
           n_eval_batches, tokenizer, settings, overwrite):
  """Builds models, data and tasks, checks output_dir's config, and starts the Loop.

  The Loop checks data, model and checkpoint before writing anything; config.gin follows.
  """
  train_model = _build(model, mode='train')
  eval_model = _build(model, mode='eval')
  train_data, data_tokenizer = _open_data(inputs, 'inputs')
  eval_data, _ = _open_data(eval_inputs, 'eval_inputs')
  task = TrainTask(train_data, _build(loss), optimizer, _schedule(lr_schedule))
  eval_tasks = []
  if eval_data is not None:
    eval_tasks.append(EvalTask(eval_data, [_build(m) for m in metrics],
                               n_eval_batches=n_eval_batches))
  # Every configurable has been called now, so the operative config is complete.
  config_text = gin.operative_config_str()
  check_config(output_dir, config_text, overwrite)
  loop = Loop(train_model, task, eval_model=eval_model, eval_tasks=eval_tasks,
              output_dir=output_dir, settings=settings,
              tokenizer=tokenizer or data_tokenizer)
  _write_if_changed(os.path.join(output_dir, CONFIG_FILE), config_text)
  return loop


def _write_if_changed(path, text):
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == text:
        return
  with open(path, 'w') as f:
    f.write(text)


# gin's words for an unknown configurable, and for an unknown parameter of a known one.
_UNKNOWN_CONFIGURABLE = re.compile(r"No configurable matching (?:reference )?'@?([^']+)'")
_UNKNOWN_PARAMETER = re.compile(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'")


def close_names(error_text):
  """Configurable or parameter names close to the unknown one in a gin error (for hints)."""
  match = _UNKNOWN_CONFIGURABLE.search(error_text)
  if match:
    wanted = match.group(1)
    names = configurables.registered_names()
    return wanted, difflib.get_close_matches(wanted, names, n=8, cutoff=0.5)
  match = _UNKNOWN_PARAMETER.search(error_text)
  if match:
    params = _parameters(match.group(1))
    return match.group(2), difflib.get_close_matches(match.group(2), params, n=8, cutoff=0.4)
  return None, []


def _parameters(configurable_name):
  try:
    found = gin.config._REGISTRY.get_match(configurable_name)  # pylint: disable=protected-access
    target = found.wrapped
    target = target.__init__ if inspect.isclass(target) else target
    return [p for p in inspect.signature(target).parameters if p not in ('self', 'mode')]
  except Exception:  # pylint: disable=broad-except
    return []


def parse_config(config_files, bindings):
  """Parses gin files and bindings; a ValueError's message gets a 'did you mean' list.

  A config file that is not UTF-8 text, or that leaves `train.model` or `train.inputs`
  unbound, is a ValueError naming the file or the binding.
  """
  configurables.register_all()
  for path in config_files:
    _check_text_file(path)
  try:
    gin.parse_config_files_and_bindings(config_files, bindings)
  except ValueError as e:
    text = str(e)
    wanted, close = close_names(text)
    if wanted is not None:
      hint = (f'\nConfigurables/parameters close to {wanted!r}: {", ".join(close)}' if close
              else f'\nNothing registered is close to {wanted!r}; see plait.configurables.')
      raise ValueError(text + hint + _renamed_hint(text)) from e
    raise
  missing = [name for name in ('train.model', 'train.inputs') if not is_bound(name)]
  if missing:
    raise ValueError(f'the config does not bind {" or ".join(missing)} (e.g. train.model = '
                     '@ReformerLM, train.inputs = @lm_inputs); start from a shipped config in '
                     'plait/rl_free_configs/.')


def _renamed_hint(error_text):
  """Where a binding renamed since an earlier plait version went, if the error names one."""
  wanted = _UNKNOWN_PARAMETER.search(error_text)
  if wanted and wanted.group(1) == 'train' and wanted.group(2) in run_config.MOVED_TO_LOOP_SETTINGS:
    return f'\ntrain.{wanted.group(2)} is now LoopSettings.{wanted.group(2)}.'
  unknown = _UNKNOWN_CONFIGURABLE.search(error_text)
  new = unknown and run_config.RENAMED_CONFIGURABLES.get(unknown.group(1).rsplit('.', 1)[-1])
  return f'\n{unknown.group(1)} is now {new}.' if new else ''


def _check_text_file(path):
  """ValueError naming `path` if it exists but is not UTF-8 text (gin would not name it)."""
  try:
    with open(path, 'rb') as f:
      f.read().decode('utf-8')
  except FileNotFoundError:
    return  # gin's own message names the file and the search path
  except UnicodeDecodeError as e:
    raise ValueError(f'{path} is not a gin config (not UTF-8 text: {e.reason} at byte '
                     f'{e.start}).') from None


def is_bound(selector):
  """Whether the parsed gin config binds `selector` (e.g. 'LoopSettings.compute_dtype')."""
  try:
    gin.query_parameter(selector)
    return True
  except ValueError:
    return False


def _without_gin_location(error):
  """An error's message without the "In call to configurable 'train'" lines gin adds."""
  return str(error).split("\n  In call to configurable")[0]


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog='plait-train', description='Train a plait model from gin configs.')
  parser.add_argument('--config_file', action='append', default=[],
                      help='a gin file (repeatable; later files override earlier ones)')
  parser.add_argument('--config', action='append', default=[],
                      help='a gin binding, e.g. "train.steps = 100" (repeatable)')
  parser.add_argument('--output_dir', required=True, help='training directory')
  parser.add_argument('--steps', type=arg_types.whole_number(0), default=None,
                      help='total training steps')
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
  args = parser.parse_args(argv)
  try:
    compilation_cache.enable(args.compilation_cache_dir)
  except OSError as e:
    print(f'plait-train: {e}', file=sys.stderr)
    return 2
  try:
    parse_config(args.config_file, args.config)
    settings = ConfiguredLoopSettings()  # a bad LoopSettings value is a config error
  except (ValueError, OSError, KeyError) as e:  # gin: KeyError for an ambiguous name
    print(f'plait-train: bad config: {e}', file=sys.stderr)
    return 2
  kwargs = {'settings': settings, 'overwrite': args.overwrite,
            'fallback_to_previous_checkpoint': args.fallback_to_previous_checkpoint}
  if args.steps is not None:
    kwargs['steps'] = args.steps
  if args.max_seconds is not None:
    kwargs['max_seconds'] = args.max_seconds
  try:
    loop = train(args.output_dir, **kwargs)
  except (DivergedError, ConfigMismatchError, run_config.DamagedConfigError,
          ckpt_lib.CheckpointError, DataError, LayerError, run_lock.RunLockedError) as e:
    print(f'plait-train: {_without_gin_location(e)}', file=sys.stderr)
    return 1
  except OSError as e:  # the machine: a full disk, a read-only or missing directory
    print(f'plait-train: {_without_gin_location(e)} (the run stopped; its last complete '
          'checkpoint, if any, is kept)', file=sys.stderr)
    return 1
  if loop.stopped_by == 'SIGTERM':  # preempted: checkpoint saved; exit as killed by SIGTERM
    print(f'plait-train: stopped by SIGTERM at step {loop.step}; the checkpoint is saved, '
          'rerun the same command to resume.', file=sys.stderr)
    return 128 + 15
  return 0


if __name__ == '__main__':
  sys.exit(main())
