"""Long Range Arena on one GPU: every model kind on every task whose data is present, beside
the paper's numbers (Tay et al. 2020, Tables 1 and 2).

  python benchmarks/lra.py --tasks listops --steps 2000 --budget_s 420 --out results/lra
  python benchmarks/lra.py --speed_only --out results/lra_speed
  python benchmarks/lra.py --smoke --out /tmp/lra_smoke          # CPU check: ~1 min, sizes only

Accuracy (Table 1): each run is plait-train's own `trainer.train` on the shipped config
`lra_<task>_<model>.gin` (`_tiny` with --smoke), with `train.steps = --steps` and an even
share of --budget_s as its time limit (the Loop evaluates and saves when it is reached); the
best checkpoint by held-out (validation) accuracy is then scored on the whole test split
(each example once; `--test_batches` for fewer; `--test_examples N` also scores examples
0..N-1 of a generated task's test stream, which starts with the split). `--jobs N` trains N
runs at once, each in its own process with 1/N of --memory_fraction of the GPU's memory
(compilation and input work overlap; the GPU itself is shared); without --jobs a given
--memory_fraction is this process's own (else JAX's default, 0.75), so two lra.py can share a
GPU. `--include` merges rows of earlier lra.json files into the tables, so a table can be
built over several sessions; `--config` adds gin bindings to every run, and `--variant NAME
BINDING...` (repeatable) trains every run once per named set of bindings, each its own run
directory (lra_<task>_<model>@NAME) and table row; in both, `{encoder}` stands for each
model's encoder (`"{encoder}.positional = 'octave'"`).
`--runs_dir` keeps the runs where a later session finds them: a run there with the same
config resumes from its latest checkpoint (a schedule longer than one session, such as
Pathfinder's 62.5K steps, is trained in parts). Rows trained for fewer steps than their
schedule are footnoted. ListOps and Pathfinder are generated here (same recipe as LRA, not
LRA's files); Image, Text and Retrieval run when their data is prepared (docs/lra.md, "Data").

Speed (Table 2): for each length (byte-level text: vocab 257, batch 32, the Text config's
4 layers of d_model 256), every kind's jitted train step (`train_step.make_train_step`, the step
the Loop runs; bf16 compute, AdamW) timed as the median of --reps steps, and its memory from
the compiled program (XLA's memory analysis: arguments + outputs + temporaries - aliased), both
relative to plait's Transformer (cuDNN flash attention on the GPU).

Writes `--out`/lra.json, lra.md (both tables) and, with matplotlib, accuracy.png and speed.png.
"""
import argparse
import json
import os
import re
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench_rows import compiled_gib  # pylint: disable=g-bad-import-order

MODELS = ('transformer', 'reformer', 'performer', 'bigbird', 'local')
TASKS = ('listops', 'pathfinder', 'image', 'text', 'retrieval')
GENERATED = ('listops', 'pathfinder')  # made here (`workers=` makes a whole split at once)
ENCODERS = {'transformer': 'TransformerEncoder', 'reformer': 'ReformerEncoder',
            'performer': 'PerformerEncoder', 'bigbird': 'BigBirdEncoder', 'local': 'LocalEncoder'}
# LRA paper Table 1 (test accuracy %); None: not in LRA.
PAPER_ACCURACY = {
    'transformer': {'listops': 36.37, 'text': 64.27, 'retrieval': 57.46, 'image': 42.44,
                    'pathfinder': 71.40},
    'reformer': {'listops': 37.27, 'text': 56.10, 'retrieval': 53.40, 'image': 38.07,
                 'pathfinder': 68.50},
    'performer': {'listops': 18.01, 'text': 65.40, 'retrieval': 53.82, 'image': 42.77,
                  'pathfinder': 77.05},
    'bigbird': {'listops': 36.05, 'text': 64.02, 'retrieval': 59.29, 'image': 40.83,
                'pathfinder': 74.87},
    'local': {'listops': 15.82, 'text': 52.98, 'retrieval': 53.39, 'image': 41.46,
              'pathfinder': 66.63},
}
# The FlashAttention paper's GPU re-run of the Transformer (Dao et al. 2022, Table 3).
FLASH_TRANSFORMER = {'listops': 37.6, 'text': 63.9, 'retrieval': 81.4, 'image': 43.5,
                     'pathfinder': 72.7}
# LRA paper Table 2: steps/s relative to the Transformer on TPU, at 1K, 2K, 3K, 4K tokens.
PAPER_SPEED = {'transformer': (1.0, 1.0, 1.0, 1.0), 'reformer': (0.5, 0.4, 0.7, 0.8),
               'performer': (1.2, 1.9, 3.8, 5.7), 'bigbird': (0.9, 0.8, 1.2, 1.1),
               'local': (1.1, 1.7, 3.2, 5.3)}
PAPER_MEMORY = {'transformer': (1.0, 1.0, 1.0, 1.0), 'reformer': (0.56, 0.37, 0.28, 0.24),
                'performer': (0.37, 0.23, 0.17, 0.14), 'bigbird': (0.77, 0.49, 0.39, 0.30),
                'local': (0.49, 0.29, 0.19, 0.14)}
SPEED_LENGTHS = (1024, 2048, 3072, 4096)


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  p.add_argument('--tasks', nargs='+', choices=TASKS, default=None,
                 help='default: every task whose data is present')
  p.add_argument('--models', nargs='+', choices=MODELS, default=None,
                 help='default: all (with --smoke: transformer and performer)')
  p.add_argument('--steps', type=int, default=None, help="default: each config's own")
  p.add_argument('--budget_s', type=float, default=None,
                 help='wall-clock seconds for all training runs together (shared evenly)')
  p.add_argument('--jobs', type=int, default=1,
                 help='accuracy runs trained at once, each in its own process with 1/jobs of '
                      "--memory_fraction of the GPU's memory (--budget_s is then shared per wave "
                      'of runs)')
  p.add_argument('--memory_fraction', type=float, default=None,
                 help="the share of the GPU's memory the runs together take (e.g. 0.6 to leave "
                      'room for another program on the same GPU); with --jobs, split evenly '
                      "between the jobs; without, this process's. Default: "
                      "XLA_PYTHON_CLIENT_MEM_FRACTION if set, else 0.9 with --jobs and JAX's "
                      "own 0.75 without")
  p.add_argument('--config', action='append', default=[], metavar='BINDING',
                 help='a gin binding added to every training run after the shipped config\'s, '
                      'e.g. "TransformerEncoder.positional = \'learned\'" (repeatable); kept in '
                      "each run's config.gin and row; {encoder} is each model's encoder, e.g. "
                      '"{encoder}.dropout = 0.1"')
  p.add_argument('--variant', nargs='+', action='append', default=[],
                 metavar=('NAME', 'BINDING'),
                 help='a named variant: NAME then its gin bindings (repeatable). Every (task, '
                      'model) is trained once per variant, after --config\'s bindings, in its own '
                      'run (runs/<config>@NAME) and table row; with --jobs side by side. '
                      '{encoder} is each model\'s encoder, as in --config')
  p.add_argument('--runs_dir', default=None,
                 help='where the runs live (default: --out/runs); a run found there with the '
                      'same config resumes from its latest checkpoint')
  p.add_argument('--include', nargs='+', default=[],
                 help="earlier lra.json files whose rows fill this run's tables where this run "
                      'has none (a table built over several sessions)')
  p.add_argument('--test_batches', type=int, default=None,
                 help='score only this many test batches (default: the whole test split)')
  p.add_argument('--test_examples', type=int, default=None, metavar='N',
                 help='generated tasks only (--tasks listops/pathfinder): also score the best '
                      'checkpoint on examples 0..N-1 of the test stream, whose first examples '
                      'are the test split (2,000 for ListOps): a tighter estimate of the same '
                      "accuracy; the row keeps both ('test' and 'test_stream')")
  p.add_argument('--data_workers', type=int, default=None,
                 help='processes that make a generated training split up front, once per task '
                      '(on-the-fly generation, 300-700 examples/s, cannot feed a GPU); default: '
                      'the CPU count - 2 (0 with --smoke: made as read)')
  p.add_argument('--splits_dir', default=None,
                 help='a directory where generated splits (ListOps, Pathfinder) are saved, '
                      'compressed, the first time and read back after (cache_dir of '
                      'lra_<task>_inputs); default: made in memory by every run')
  p.add_argument('--lengths', type=int, nargs='+', default=list(SPEED_LENGTHS))
  p.add_argument('--reps', type=int, default=10)
  p.add_argument('--speed_only', action='store_true')
  p.add_argument('--tables_only', action='store_true',
                 help='train and time nothing: the tables of the --include files')
  p.add_argument('--accuracy_only', action='store_true')
  p.add_argument('--smoke', action='store_true',
                 help='checks the script on a CPU: tiny configs with 1 layer, 2 steps, ListOps '
                      'only unless --tasks, length 128, batch 2')
  p.add_argument('--out', required=True)
  args = p.parse_args(argv)
  if args.test_examples is not None and (args.test_batches is not None or args.test_examples < 1):
    p.error('--test_examples: give a positive N, and not with --test_batches (which scores '
            'fewer examples)')
  if args.smoke:
    args.tasks = args.tasks or ['listops']
    args.models = args.models or ['transformer', 'performer']
    args.steps = args.steps or 2
    args.test_batches = None if args.test_examples else 1
    args.reps = 1
    args.lengths = [128]
  args.models = args.models or list(MODELS)
  if args.jobs < 1:
    p.error(f'--jobs must be >= 1, got {args.jobs}')
  if args.test_examples is not None:
    if not args.tasks or set(args.tasks) - set(GENERATED):
      p.error('--test_examples: only generated tasks have a test stream longer than the '
              f'split; give --tasks from {" ".join(GENERATED)}')
  env = os.environ.get('XLA_PYTHON_CLIENT_MEM_FRACTION')
  if env is not None:
    try:
      env_fraction = float(env)
    except ValueError:
      p.error(f'XLA_PYTHON_CLIENT_MEM_FRACTION={env!r} is not a number')
    if args.memory_fraction is None:
      args.memory_fraction = env_fraction   # the share the runs together take, as the flag
    elif env_fraction != args.memory_fraction:
      p.error(f'--memory_fraction {args.memory_fraction} and XLA_PYTHON_CLIENT_MEM_FRACTION='
              f'{env} disagree; give one of them')
  if args.memory_fraction is not None and not 0 < args.memory_fraction <= 1:
    p.error(f'--memory_fraction must be in (0, 1], got {args.memory_fraction}')
  args.variants = {}
  for name, *bindings in args.variant:
    if not re.fullmatch(r'[A-Za-z0-9_.-]+', name) or name in args.variants:
      p.error(f'--variant: {name!r} is not a new name of letters, digits, _ . - (it names the '
              'run directory and the table row)')
    if not bindings:
      p.error(f'--variant {name}: give at least one gin binding after the name')
    args.variants[name] = bindings
  if args.data_workers is None:
    spare = max(0, (os.cpu_count() or 1) - 2)
    args.data_workers = 0 if args.smoke else max(1, spare // args.jobs) if spare else 0
  for path in args.include:
    if not os.path.isfile(path):
      p.error(f'--include: no such file {path!r}')
  return args


# ----- accuracy -----

def parse_run_config(task, model, args, variant=None):
  """Parses lra_<task>_<model>.gin (`_tiny` with --smoke) with this script's bindings and
  --config; returns the config's name."""
  import gin  # pylint: disable=import-outside-toplevel
  from plait import rl_free_configs  # pylint: disable=import-outside-toplevel
  from plait.supervised import gin_config, trainer  # pylint: disable=import-outside-toplevel
  name = f'lra_{task}_{model}' + ('_tiny' if args.smoke else '')
  bindings = ["LoopSettings.progress = 'none'", 'LoopSettings.tensorboard = False',
              'train.plot = False']
  if args.steps:
    every = args.steps if args.smoke else max(1, args.steps // 4)
    bindings += [f'train.steps = {args.steps}', f'LoopSettings.checkpoint_every = {every}']
  if args.smoke:
    encoder = ENCODERS[model]
    bindings += ['train.n_eval_batches = 1', f'{encoder}.n_layers = 1', f'{encoder}.d_model = 16',
                 f'{encoder}.d_ff = 16', f'{encoder}.head_d_ff = 16' if task != 'retrieval'
                 else 'TwoTowerClassifier.d_ff = 16']
  bindings += run_bindings(args, model, variant)
  gin.clear_config()
  try:
    trainer.parse_config([rl_free_configs.path(name)], bindings)
  except gin_config.ConfigError as e:
    raise SystemExit(f'lra.py: {name} with {run_bindings(args, model, variant)}: {e}') from None
  return name


def premake_splits(pairs, args):
  """--splits_dir with --jobs: each generated task's splits are made here once, with every
  job's data workers, before the jobs start (else each job would make the same files)."""
  import gin  # pylint: disable=import-outside-toplevel
  workers = max(1, args.data_workers * args.jobs)
  for task in dict.fromkeys(t for t, _, _ in pairs if t in GENERATED):
    _, model, variant = next(p for p in pairs if p[0] == task)
    parse_run_config(task, model, args, variant)
    task_data(task, workers, args.splits_dir)
    if args.test_batches is None:   # scored whole: made up front too (see test_accuracy)
      test_split(test_split_args(task, workers, args.splits_dir, args.test_examples))
    gin.clear_config()


def train_one(task, model, args, max_seconds, runs_dir, data_cache, variant=None):
  """Trains lra_<task>_<model> (with --variant `variant`'s bindings) with plait-train's
  train(); {'val', 'test', 'steps', ...}.

  The task's data callables are made once per set of data bindings (`data_cache`) and given to
  every run that has them, so a generated split is made once, up front with `--data_workers`
  processes.
  """
  import gin  # pylint: disable=import-outside-toplevel
  from plait.supervised import metrics_log, trainer  # pylint: disable=import-outside-toplevel
  name = parse_run_config(task, model, args, variant)
  output_dir = os.path.join(runs_dir, with_variant(name, variant))
  schedule_steps = gin.query_parameter('train.steps')
  data_key = (task, data_bindings(task))
  if data_key not in data_cache:
    data_cache[data_key] = task_data(task, args.data_workers, args.splits_dir)
  train_inputs, eval_inputs = data_cache[data_key]
  start = time.perf_counter()
  # A kept run (--runs_dir) is never deleted: another config there is an error, not a restart.
  try:
    loop = trainer.train(output_dir, inputs=train_inputs, eval_inputs=eval_inputs,
                         overwrite=not args.runs_dir, max_seconds=max_seconds)
  except trainer.ConfigMismatchError as e:   # plait-train's advice does not apply here
    raise SystemExit(f'lra.py: --runs_dir: {e.output_dir} was trained with a different '
                     'config (saved -, this run +):\n' + '\n'.join(e.differences[:e.SHOWN]) +
                     '\nResume it with the flags it was trained with (--steps, --smoke), '
                     'or give another --runs_dir.') from None
  except trainer.ConfigError as e:   # e.g. a --config binding that would change nothing
    raise SystemExit(f'lra.py: {name} with {run_bindings(args, model, variant)}: '
                     f"{trainer.without_gin_location(e)}") from None
  wall = time.perf_counter() - start
  if loop.stopped_by:   # e.g. a time limit around this script: nothing to score, stop here
    raise SystemExit(f'lra.py: {name} stopped by {loop.stopped_by} at step {loop.step}; its '
                     f'checkpoint is kept in {output_dir} (with --runs_dir, rerun to resume). '
                     f'Rows of the runs before it are in {args.out}/lra.json.')
  records = metrics_log.read_metrics(output_dir) or loop.history   # all parts of a resumed run
  evals = [h for h in records if h.get('split') == 'eval' and 'Accuracy' in h]
  test, stream = test_accuracy(output_dir, task, args.test_batches, args.data_workers,
                               data_cache, args.splits_dir, args.test_examples)
  gin.clear_config()
  return {'task': task, 'model': model, 'config': name, **run_fields(args, model, variant),
          'steps': loop.step,
          'schedule_steps': schedule_steps, 'wall_s': round(wall, 1),
          'val': round(100 * max(h['Accuracy'] for h in evals), 2) if evals else None,
          'test': None if test is None else round(100 * test, 2),
          **({'test_stream': stream} if stream else {})}


def with_variant(name, variant):
  """A run's directory name: `name`, or `name@variant` for a --variant run."""
  return f'{name}@{variant}' if variant else name


def run_bindings(args, model, variant=None):
  """The bindings a run of `model` adds to its shipped config: --config's, then its
  --variant's, with `{encoder}` spelled as the model's encoder (e.g. `{encoder}.positional`:
  `PerformerEncoder.positional` for the Performer)."""
  return [b.replace('{encoder}', ENCODERS[model])
          for b in list(args.config) + list(args.variants.get(variant, []))]


def run_fields(args, model, variant=None):
  """A row's {'variant': NAME, 'bindings': [...]}, each only when there is one."""
  bindings = run_bindings(args, model, variant)
  return {**({'variant': variant} if variant else {}),
          **({'bindings': bindings} if bindings else {})}


def data_bindings(task):
  """The parsed config's bindings of lra_<task>_inputs (every scope), as sorted text: runs
  whose data bindings are the same share one set of data callables."""
  from plait.supervised import gin_config  # pylint: disable=import-outside-toplevel
  import gin  # pylint: disable=import-outside-toplevel
  values = gin_config.binding_values(gin.config_str())
  return tuple(sorted(f'{k} = {v!r}' for k, v in values.items()
                      if k.rpartition('/')[-1].startswith(f'lra_{task}_inputs.')))


def generated_split_args(task, workers, splits_dir):
  """Keyword arguments of lra_<task>_inputs that make a whole generated split up front
  (`workers` processes; saved in and read from `splits_dir`); {} for other tasks."""
  if task not in GENERATED:
    return {}
  return {**({'workers': workers} if workers else {}),
          **({'cache_dir': splits_dir} if splits_dir else {})}


def task_data(task, workers, splits_dir=None):
  """(train, eval) data callables as the parsed config binds them; generated splits made up
  front with `workers` processes (0: as read), or read from `splits_dir`."""
  import gin  # pylint: disable=import-outside-toplevel
  make = gin.query_parameter('train.inputs').scoped_configurable_fn
  extra = generated_split_args(task, workers, splits_dir)
  start = time.perf_counter()
  train_inputs = make(**extra)
  with gin.config_scope('eval'):
    eval_inputs = make(**extra)
  if extra:
    how = f'read or made (saved in {splits_dir})' if splits_dir else 'made'
    print(f'lra.py: {how} the {task} training and validation splits with {workers} processes '
          f'in {time.perf_counter() - start:.0f} s', file=sys.stderr)
  return train_inputs, eval_inputs


def test_split(extra, **kwargs):
  """The parsed config's test split (train.inputs in the eval scope) with `extra`
  (generated_split_args) and `kwargs`."""
  import gin  # pylint: disable=import-outside-toplevel
  inputs_fn = gin.query_parameter('train.inputs').scoped_configurable_fn
  with gin.config_scope('eval'):
    return inputs_fn(split='test', **extra, **kwargs)


def test_split_args(task, workers, splits_dir, stream_examples=None):
  """lra_<task>_inputs' arguments of the test split scored whole (premake_splits makes it,
  test_accuracy reads it): generated_split_args, plus with `stream_examples` N examples
  0..N-1 of the test stream (example i is a function of (seed, split, i), so the split is its
  start)."""
  return {**generated_split_args(task, workers, splits_dir),
          **({'n_examples': stream_examples} if stream_examples else {})}


def test_accuracy(output_dir, task, n_batches, workers=0, data_cache=None, splits_dir=None,
                  stream_examples=None):
  """Accuracy of the best checkpoint (by validation accuracy) on the test split, each example
  once (the first n_batches batches' worth if n_batches is given); a generated split is made
  up front with `workers` processes when it is scored whole, once per task and batch size
  when `data_cache` (a dict) keeps it for the next model (and kept in `splits_dir`).

  Returns (split accuracy, stream): stream is None, or with `stream_examples` N (a generated
  task), {'examples': N, 'split_examples': the split's size, 'test': accuracy % on examples
  0..N-1 of the test stream}, scored in the same pass (the split is the stream's start).
  """
  import gin  # pylint: disable=import-outside-toplevel
  from plait.supervised import checkpoints  # pylint: disable=import-outside-toplevel
  model = gin.query_parameter('train.model').scoped_configurable_fn(mode='eval')
  batch_size = gin.query_parameter(f'lra_{task}_inputs.batch_size')
  split_examples = None
  if stream_examples:
    split_examples = len(test_split({}, batch_size=batch_size).examples)   # lazy: cheap
    if stream_examples < split_examples:
      raise SystemExit(f'lra.py: --test_examples {stream_examples} is fewer than the {task} '
                       f'test split\'s {split_examples} examples: give at least that many')
  extra = test_split_args(task, workers, splits_dir, stream_examples) if n_batches is None else {}
  cache = {} if data_cache is None else data_cache
  key = ('test', task, batch_size, bool(extra), stream_examples)
  if key not in cache:
    cache[key] = test_split(extra, batch_size=batch_size)
  test_inputs = cache[key]
  n_examples = len(test_inputs.examples)
  if n_batches is not None:
    n_examples = min(n_examples, n_batches * batch_size)
  batches = iter(test_inputs())
  first = next(batches)
  sig = jax.ShapeDtypeStruct(first[0].shape, jnp.int32)
  weights, state, _ = checkpoints.read_model(output_dir, model, sig, step='best')
  forward = jax.jit(lambda x: jnp.argmax(model.pure_fn(x, weights, state, None)[0], axis=-1))
  right, total = [], []   # per example, in the split's fixed order
  batch = first
  while len(total) < n_examples:  # the test split is in a fixed order and repeats: stop at its end
    inputs, targets, batch_weights = batch
    keep = min(len(targets), n_examples - len(total))
    hits = np.asarray(forward(inputs)) == np.asarray(targets)
    right += list((hits * np.asarray(batch_weights))[:keep])
    total += list(np.asarray(batch_weights)[:keep])
    if len(total) < n_examples:
      batch = next(batches)

  def accuracy(n):
    return float(np.sum(right[:n])) / max(float(np.sum(total[:n])), 1.0)

  if split_examples is None:
    return accuracy(n_examples), None
  return accuracy(split_examples), {'examples': n_examples, 'split_examples': split_examples,
                                    'test': round(100 * accuracy(n_examples), 2)}


def train_in_processes(pairs, args, share):
  """Trains the (task, model, variant) runs `args.jobs` at a time, each by this script in its own
  process with an even share of the GPU's memory; yields each run's row as it finishes.

  A SIGTERM to this process goes on to the running jobs (each saves a checkpoint and stops, as
  plait-train does), no further job starts, and this process exits once they have.
  """
  import signal  # pylint: disable=import-outside-toplevel
  fraction = 0.9 if args.memory_fraction is None else args.memory_fraction
  env = dict(os.environ, XLA_PYTHON_CLIENT_MEM_FRACTION=f'{fraction / args.jobs:.3f}')
  pending, running, stopping = list(pairs), [], []

  def forward(signum, _):
    stopping.append(signum)
    pending.clear()
    for job in running:
      job[-1].send_signal(signum)

  previous = signal.signal(signal.SIGTERM, forward)
  try:
    yield from _run_jobs(pending, running, stopping, args, share, env)
  finally:
    signal.signal(signal.SIGTERM, previous)
  if stopping:
    print('lra.py: SIGTERM: the running jobs were stopped (each saves a checkpoint first: with '
          '--runs_dir, rerun to resume); no further job was started. Rows so far are in '
          f'{args.out}/lra.json.', file=sys.stderr, flush=True)
    raise SystemExit(128 + signal.SIGTERM)


def _run_jobs(pending, running, stopping, args, share, env):
  """train_in_processes' loop: starts jobs from `pending` while fewer than args.jobs run."""
  import subprocess  # pylint: disable=import-outside-toplevel
  while pending or running:
    while pending and len(running) < args.jobs:
      t, m, v = pending.pop(0)
      out = os.path.join(args.out, 'jobs', with_variant(f'{t}_{m}', v))
      cmd = [sys.executable, os.path.abspath(__file__), '--tasks', t, '--models', m,
             '--accuracy_only', '--out', out, '--data_workers', str(args.data_workers)]
      cmd += ['--splits_dir', args.splits_dir] if args.splits_dir else []
      cmd += ['--test_batches', str(args.test_batches)] if args.test_batches else []
      cmd += ['--test_examples', str(args.test_examples)] if args.test_examples else []
      cmd += ['--steps', str(args.steps)] if args.steps else []
      cmd += ['--budget_s', str(share)] if share is not None else []
      cmd += ['--smoke'] if args.smoke else []
      cmd += ['--runs_dir', args.runs_dir] if args.runs_dir else []
      cmd += [a for binding in args.config for a in ('--config', binding)]
      cmd += ['--variant', v, *args.variants[v]] if v else []
      os.makedirs(out, exist_ok=True)
      log = open(out + '.log', 'w')  # pylint: disable=consider-using-with
      running.append((t, m, v, out, log, subprocess.Popen(cmd, env=env, stdout=log,
                                                           stderr=subprocess.STDOUT)))
      if stopping:   # the signal came while it was starting
        running[-1][-1].send_signal(stopping[0])
    time.sleep(1.0)
    for job in [j for j in running if j[-1].poll() is not None]:
      running.remove(job)
      t, m, v, out, log, proc = job
      log.close()
      try:
        with open(os.path.join(out, 'lra.json')) as f:
          rows = json.load(f)['accuracy']
      except (OSError, ValueError, KeyError):
        rows = []
      if proc.returncode or not rows:
        yield {'task': t, 'model': m, **run_fields(args, m, v), 'val': None, 'test': None,
               'error': job_error(proc.returncode, out + '.log')}
      else:
        yield from rows


def job_error(returncode, log_path):
  """A failed job's row error: its exit code, the error its log ends with, and the log."""
  try:
    with open(log_path, errors='replace') as f:
      lines = [l.strip() for l in f if l.strip()]
  except OSError:
    lines = []
  errors = [l for l in lines
            if re.match(r'(lra\.py: |[\w.]+(Error|Exception|Exit)\b: )', l)]
  last = (errors or lines or ['(empty log)'])[-1]
  return f'exit {returncode}: {last[:300]} (log: {log_path})'


# ----- speed -----

def speed_model(model, smoke):
  """The Text task's encoder of `model` (byte-level, 4 layers of 256, padding masked), or a
  tiny one."""
  from plait import models  # pylint: disable=import-outside-toplevel
  # Mean pooling: the length stays the given one for every kind (and even, as cuDNN's masked
  # kernels need for the Transformer).
  size = dict(vocab_size=257, n_classes=2, d_model=256, d_ff=1024, n_layers=4, n_heads=4,
              max_len=max(SPEED_LENGTHS), pooling='mean', head_d_ff=1024, mode='train')
  chunk = 64
  if smoke:
    size.update(d_model=32, d_ff=64, n_layers=1, n_heads=2, head_d_ff=64)
    chunk = 16
  kinds = {
      'transformer': (models.TransformerEncoder, {}),
      'reformer': (models.ReformerEncoder, dict(n_hashes=2, n_buckets=8 if smoke else 64,
                                                chunk_len=chunk)),
      'performer': (models.PerformerEncoder, dict(nb_features=None, kernel='relu',
                                                  recompute_features=False)),  # as the configs
      'bigbird': (models.BigBirdEncoder, dict(block_size=chunk, num_rand_blocks=1 if smoke
                                              else 3)),
      'local': (models.LocalEncoder, dict(chunk_len=chunk)),
  }
  constructor, settings = kinds[model]
  return constructor(**size, **settings)


def speed_step(model_name, length, smoke):
  """(compiled training step, its first arguments) of `model_name` at `length` tokens.

  The step donates weights and optimizer state: feed each call the previous call's outputs.
  """
  batch = 2 if smoke else 32
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(1, 257, (batch, length)), jnp.int32)
  data = (tokens, jnp.asarray(rng.integers(0, 2, (batch,)), jnp.int32),
          jnp.ones((batch,), jnp.float32))
  return compiled_train_step(speed_model(model_name, smoke), data)


def compiled_train_step(model, data, compute_dtype=jnp.bfloat16):
  """(compiled training step of `model` on the batch `data`, its first arguments): plait's
  `make_train_step` with AdamW, weights and optimizer state donated (feed each call the
  previous call's outputs)."""
  import plait.layers as tl  # pylint: disable=import-outside-toplevel
  from plait.supervised import optimizers  # pylint: disable=import-outside-toplevel
  from plait.supervised.train_step import make_train_step  # pylint: disable=import-outside-toplevel
  inputs = data[0]
  weights, state = model.init(jax.ShapeDtypeStruct(inputs.shape, inputs.dtype),
                              rng=jax.random.key(1))
  optimizer = optimizers.AdamW(1e-4, weight_decay=0.1)
  opt_state = optimizer.init(weights)
  step = jax.jit(make_train_step(model, tl.CrossEntropyLoss(), optimizer,
                                 compute_dtype=compute_dtype), donate_argnums=(0, 2))
  call_args = (weights, state, opt_state, data, jax.random.key(2))
  return step.lower(*call_args).compile(), call_args


def time_one(model_name, length, args):
  """{'steps_per_s', 'memory_gib'} of one training step of `model_name` at `length` tokens."""
  compiled, call_args = speed_step(model_name, length, args.smoke)
  gib = compiled_gib(compiled)
  times = []
  for i in range(args.reps + 2):
    start = time.perf_counter()
    out = compiled(*call_args)
    jax.block_until_ready(out)
    call_args = (out.weights, out.state, out.opt_state) + call_args[3:]
    if i >= 2:
      times.append(time.perf_counter() - start)
  return {'model': model_name, 'length': length, 'steps_per_s': 1.0 / statistics.median(times),
          'memory_gib': gib}


# ----- tables and plots -----

def table_keys(rows, models):
  """The (model, variant) rows of the accuracy table: each model, then its variants in the
  order trained (variant None: the shipped config, listed whenever the model has no variant)."""
  keys = []
  for m in models:
    variants = list(dict.fromkeys(r.get('variant') for r in rows if r['model'] == m))
    keys += [(m, v) for v in (variants or [None])]
  return keys


def by_run(rows):
  """{(task, model, variant): row} of accuracy rows (variant None: the shipped config)."""
  return {(r['task'], r['model'], r.get('variant')): r for r in rows}


def score(row):
  """A row's accuracy for the tables: test, else validation; None for no row or no score."""
  if row is None:
    return None
  return row['test'] if row['test'] is not None else row['val']


def row_label(model, variant):
  return model if variant is None else f'{model} ({variant})'


def accuracy_table(rows, tasks, models):
  by = by_run(rows)
  head = ('| model | ' + ' | '.join(f'{t} plait (paper)' for t in tasks) +
          ' | average plait (paper) |')
  lines, notes = [head, '|' + ' --- |' * (len(tasks) + 2)], []
  for m, v in table_keys(rows, models):
    label = row_label(m, v)
    cells, ours, theirs = [], [], []
    for t in tasks:
      r = by.get((t, m, v))
      value = score(r)
      paper = PAPER_ACCURACY[m].get(t)
      marks = []
      if r is not None and r.get('bindings'):
        notes.append(f'{label} on {t}: trained with ' + '; '.join(r['bindings']))
        marks.append(len(notes))
      if r is not None and 'error' in r:
        notes.append(f'{label} on {t}: failed, {r["error"]}')
        marks.append(len(notes))
      if r is not None and r.get('test_stream'):
        ts = r['test_stream']
        notes.append(f'{label} on {t}: {ts["test"]:.2f} on examples 0-{ts["examples"] - 1:,} of '
                     f'the test stream (the split is its first {ts["split_examples"]:,})')
        marks.append(len(notes))
      if r is not None and r.get('schedule_steps') and r.get('steps', 0) < r['schedule_steps']:
        notes.append(f'{label} on {t}: {r["steps"]} of the schedule\'s {r["schedule_steps"]} '
                     'steps (time budget)')
        marks.append(len(notes))
      mark = ''.join(f' [{i}]' for i in marks)
      cells.append(f'{_pct(value)}{mark} ({_pct(paper)})')
      if value is not None and paper is not None:
        ours.append(value)
        theirs.append(paper)
    average = f'{_pct(np.mean(ours) if ours else None)} ({_pct(np.mean(theirs) if theirs else None)})'
    lines.append(f'| {label} | ' + ' | '.join(cells) + f' | {average} |')
  flash = ' | '.join(_pct(FLASH_TRANSFORMER.get(t)) for t in tasks)
  lines.append(f'| transformer, FlashAttention paper (GPU) | {flash} | |')
  lines += [''] + [f'[{i}] {n}' for i, n in enumerate(notes, 1)] if notes else []
  return '\n'.join(lines)


def speed_table(rows, lengths, models):
  by = {(r['model'], r['length']): r for r in rows}
  head = ('| model | ' + ' | '.join(f'{n} steps/s × (paper)' for n in lengths) + ' | ' +
          ' | '.join(f'{n} memory × (paper)' for n in lengths) + ' |')
  lines = [head, '|' + ' --- |' * (2 * len(lengths) + 1)]
  for m in models:
    speed, memory = [], []
    for i, n in enumerate(lengths):
      r, base = by.get((m, n)), by.get(('transformer', n))
      paper_i = SPEED_LENGTHS.index(n) if n in SPEED_LENGTHS else None
      ps = '' if paper_i is None else f' ({PAPER_SPEED[m][paper_i]})'
      pm = '' if paper_i is None else f' ({PAPER_MEMORY[m][paper_i]})'
      if r is None or base is None or 'error' in r or 'error' in base:
        speed.append('—' + ps)
        memory.append('—' + pm)
        continue
      speed.append(f'{r["steps_per_s"] / base["steps_per_s"]:.2f}{ps}')
      mem = (r['memory_gib'] / base['memory_gib']) if r['memory_gib'] and base['memory_gib'] else None
      memory.append(('—' if mem is None else f'{mem:.2f}') + pm)
    lines.append(f'| {m} | ' + ' | '.join(speed + memory) + ' |')
  base_rows = [by.get(('transformer', n)) for n in lengths]
  lines.append('| transformer (absolute) | ' + ' | '.join(
      '—' if r is None or 'error' in r else f'{r["steps_per_s"]:.2f} steps/s' for r in base_rows)
      + ' | ' + ' | '.join('—' if r is None or not r.get('memory_gib') else
                           f'{r["memory_gib"]:.2f} GiB' for r in base_rows) + ' |')
  return '\n'.join(lines)


def _pct(value):
  return '—' if value is None else f'{value:.2f}'


def plots(out, accuracy_rows, speed_rows, tasks, models, lengths, batch):
  """accuracy.png (bars: plait and paper per task and model) and speed.png (steps/s vs length)."""
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  except ImportError:
    print('matplotlib is not installed: no plots (pip install matplotlib).', file=sys.stderr)
    return []
  written = []
  if accuracy_rows:
    by = by_run(accuracy_rows)
    all_keys = table_keys(accuracy_rows, models)
    # Each task's bars: the (model, variant) rows trained on it (all rows where none was).
    task_keys = {t: [k for k in all_keys if (t, *k) in by] or all_keys for t in tasks}
    widths = [max(4, 0.7 * len(task_keys[t])) for t in tasks]
    fig, axes = plt.subplots(1, len(tasks), figsize=(sum(widths), 3.8), squeeze=False,
                             gridspec_kw={'width_ratios': widths})
    for ax, t in zip(axes[0], tasks):
      keys = task_keys[t]
      x = np.arange(len(keys))
      ours = [score(by.get((t, *k))) for k in keys]
      paper = [PAPER_ACCURACY[m].get(t) or 0 for m, _ in keys]
      ax.bar(x - 0.2, [v or 0 for v in ours], 0.4, label='plait')
      ax.bar(x + 0.2, paper, 0.4, label='LRA paper')
      ax.set_xticks(x, [row_label(*k) for k in keys], rotation=30, ha='right')
      ax.set_title(t)
      ax.set_ylabel('accuracy %')
      ax.set_ylim(0, 1.25 * max([v or 0 for v in ours] + paper + [1]))
    axes[0][0].legend(loc='upper center', ncols=2, fontsize='small')   # in the headroom
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'accuracy.png'), dpi=120)
    written.append('accuracy.png')
  if speed_rows:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m in models:
      points = [(r['length'], r['steps_per_s']) for r in speed_rows
                if r['model'] == m and 'error' not in r]
      if points:
        ax.plot(*zip(*points), marker='o', label=m)
    ax.set_xlabel('tokens')
    ax.set_ylabel(f'train steps/s (batch {batch})')
    ax.set_xticks(lengths)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'speed.png'), dpi=120)
    written.append('speed.png')
  return written


def apply_memory_fraction(fraction):
  """This process's share of the GPU's memory (`fraction`; None leaves JAX's default), read
  once, when JAX makes its GPU client: call it before anything touches the devices."""
  if fraction is not None:
    os.environ['XLA_PYTHON_CLIENT_MEM_FRACTION'] = str(fraction)


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  apply_memory_fraction(args.memory_fraction)   # before jax.devices() below makes the client
  os.makedirs(args.out, exist_ok=True)
  from plait.data import lra  # pylint: disable=import-outside-toplevel
  tasks = args.tasks or lra.available_tasks()
  results = {'device': jax.devices()[0].device_kind, 'args': vars(args), 'accuracy': [],
             'speed': []}
  path = os.path.join(args.out, 'lra.json')

  def save():
    with open(path, 'w') as f:
      json.dump(results, f, indent=1)

  if args.tables_only and not args.include:
    raise SystemExit('lra.py: --tables_only needs --include')
  if args.tables_only:
    tasks = []
  elif not args.speed_only:
    missing = {t: lra.missing_data(t) for t in tasks}
    runnable = [t for t in tasks if missing[t] is None]
    for t in tasks:
      if missing[t] is not None:
        print(f'lra.py: skipping {t}: {missing[t]}', file=sys.stderr)
    pairs = [(t, m, v) for t in runnable for m in args.models
             for v in (list(args.variants) or [None])]
    waves = -(-len(pairs) // args.jobs)
    share = None if args.budget_s is None else args.budget_s / max(waves, 1)
    runs_dir = args.runs_dir or os.path.join(args.out, 'runs')
    if args.jobs > 1 and len(pairs) > 1:
      if args.splits_dir:
        premake_splits(pairs, args)
      rows = train_in_processes(pairs, args, share)
    else:
      data_cache = {}
      rows = (train_one(t, m, args, share, runs_dir, data_cache, v) for t, m, v in pairs)
    for row in rows:
      print(json.dumps(row), flush=True)
      results['accuracy'].append(row)
      save()
    tasks = runnable
  if not args.accuracy_only and not args.tables_only:
    for n in args.lengths:
      for m in args.models:
        try:
          row = time_one(m, n, args)
        except Exception as e:  # pylint: disable=broad-except
          row = {'model': m, 'length': n, 'error': f'{type(e).__name__}: {str(e)[:300]}'}
        print(json.dumps(row), flush=True)
        results['speed'].append(row)
        save()
  models = [] if args.tables_only else list(args.models)
  included_devices = []
  for earlier_path in args.include:
    with open(earlier_path) as f:
      earlier = json.load(f)
    included_devices.append(earlier.get('device', '?'))
    for key, fields in (('accuracy', ('task', 'model', 'variant')),
                        ('speed', ('model', 'length'))):
      have = {tuple(r.get(k) for k in fields) for r in results[key]}
      results[key] += [dict(r, included_from=earlier_path) for r in earlier.get(key, [])
                       if tuple(r.get(k) for k in fields) not in have]
    tasks = list(dict.fromkeys(list(tasks) + [r['task'] for r in results['accuracy']]))
    seen = {r['model'] for r in results['accuracy'] + results['speed']}
    models = [m for m in MODELS if m in models or m in seen]
  if args.tables_only:   # the tables' rows were measured there, not on this machine
    results['device'] = ' + '.join(dict.fromkeys(included_devices))
  if args.include:
    save()
  lengths = sorted({*([] if args.tables_only else args.lengths),
                    *(r['length'] for r in results['speed'])})
  text = [f'# Long Range Arena, plait on {results["device"]}', '',
          'Accuracy % (test split, best checkpoint by validation accuracy; LRA paper Table 1 in '
          'parentheses). ListOps and Pathfinder are generated here with LRA\'s recipe, not LRA\'s '
          'files.', '', accuracy_table(results['accuracy'], tasks, models), '',
          'Training steps/s and memory relative to plait\'s Transformer (byte-level text shape, '
          f'batch {2 if args.smoke else 32}; LRA paper Table 2, TPU, in parentheses).', '',
          speed_table(results['speed'], lengths, models), '']
  with open(os.path.join(args.out, 'lra.md'), 'w') as f:
    f.write('\n'.join(text))
  written = plots(args.out, results['accuracy'], results['speed'], tasks, models,
                  lengths, 2 if args.smoke else 32)
  print('\n'.join(text))
  print(f'wrote {path}, lra.md' + ''.join(f', {w}' for w in written))
  failed = [r for r in results['accuracy'] if 'error' in r and 'included_from' not in r]
  if failed:
    runs = '; '.join(f'{r["task"]} {row_label(r["model"], r.get("variant"))}' for r in failed)
    raise SystemExit(f'lra.py: {len(failed)} training run(s) failed (the table footnotes '
                     f'say why): {runs}')
  return results


if __name__ == '__main__':
  main()
