"""Checkpoints: orbax-checkpoint `CheckpointManager` under `output_dir/checkpoints/<step>/`.

A checkpoint holds the weights, layer state, optimizer state, step, rng and the
data stream's position, so resuming continues exactly where training stopped.
Saving is asynchronous (training goes on while files are written) and atomic
(orbax writes to a temporary directory and renames it when complete, so a
killed run never leaves a half-written checkpoint that looks complete).

Each checkpoint directory holds orbax items (an empty tree is not written):
  weights/, state/, opt_state/: orbax PyTrees of nested dicts keyed by the leaves'
    paths (see `weight_paths`), so orbax alone reads a tree that reads like the model:
      {'Serial': {'Dense_16[0]': {'kernel': (8, 16), 'bias': (16,)}, ...}}
    and the optimizer state: {'0': {'count': (), 'mu': {'Serial': {...}}, ...}};
  meta/: JSON with the format, step, rng, data position, metrics and, for every leaf,
    [name, shape, dtype, path], e.g. ['Serial/Dense_16[0]/kernel', [8, 16], 'float32', [...]].
Restoring checks every leaf against the model first, so a checkpoint from a
different model gives an error naming the mismatched weights by their paths.

  >>> import orbax.checkpoint as ocp
  >>> weights = ocp.PyTreeCheckpointer().restore('/tmp/run/checkpoints/20/weights')
  >>> weights['Serial']['Dense_16[0]']['kernel'].shape
  (8, 16)

Checkpoints of format 1 and 2 (one `arrays` item of flat keys `w00000`, `s00000`,
`o00000` in tree order) still restore: their leaves are matched by position.

Integrity: every checkpoint also holds `manifest.json`, the size and SHA-256 of each
of its files, written inside orbax's temporary directory just before the atomic
rename (orbax's post-finalization hook), so a committed checkpoint always has one.
Restoring verifies it first: a truncated, garbled or missing file raises
CorruptCheckpointError naming the file. `Checkpointer.resume_step(on_corrupt=...)`
either refuses ('error', the default) or moves damaged checkpoints aside to
`output_dir/corrupt_checkpoints/<step>` and uses the newest intact one ('previous').
Temporary directories of a save that was killed are never loaded (orbax ignores
them) and are removed when the next Checkpointer opens the directory.

Best checkpoint: with `keep_best` set, each checkpoint's meta also records the metric and
mode the run ranks by (`'best': {'metric': 'eval/loss', 'mode': 'min'}`), and
`best_step(output_dir)` finds the kept checkpoint with the best value.

Decoding loads weights with `restore_model` (step: None = latest, an int, or 'best'):

  >>> weights, state, step = restore_model('/tmp/run', model, ShapeDtype((1, 64), np.int32))
  >>> weights, state, step = restore_model('/tmp/run', model, signature, step='best')
"""
import collections
import errno
import hashlib
import json
import math
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp

from plait.supervised import weight_paths
from plait.supervised.weight_paths import leaf_names  # pylint: disable=unused-import

CHECKPOINT_DIR = 'checkpoints'
CORRUPT_DIR = 'corrupt_checkpoints'
MANIFEST_FILE = 'manifest.json'
TOKENIZER_DIR = 'tokenizer'
# 3: named trees (weights/, state/, opt_state/); 2: flat `arrays` with manifest.json;
# 1: flat `arrays` before manifests (loaded unverified).
FORMAT = 3
_FIRST_WITH_MANIFEST = 2
KINDS = ('weights', 'state', 'opt_state')  # the array items, in this order
BEST = 'best'  # the `step` of restore_model / best_step: the best checkpoint by keep_best
_FLAT_PREFIX = {'weights': 'w', 'state': 's', 'opt_state': 'o'}  # formats 1 and 2


class CheckpointError(ValueError):
  """A checkpoint is missing, unreadable or does not match the model."""


class CorruptCheckpointError(CheckpointError):
  """A checkpoint's files differ from its manifest (truncated, garbled or missing)."""

  def __init__(self, message, step, path):
    super().__init__(message)
    self.step, self.path = step, path


def _file_digest(path):
  with open(path, 'rb') as f:
    return hashlib.file_digest(f, 'sha256').hexdigest()


# orbax's own step bookkeeping, rewritten by orbax after the manifest (commit time, metrics).
_UNLISTED = (MANIFEST_FILE, '_CHECKPOINT_METADATA')


def write_manifest(step_dir):
  """Writes `step_dir/manifest.json`: {relative path: {size, sha256}} of its data files."""
  files = {}
  for root, _, names in os.walk(step_dir):
    for name in names:
      path = os.path.join(root, name)
      rel = os.path.relpath(path, step_dir)
      if rel not in _UNLISTED:
        files[rel] = {'size': os.path.getsize(path), 'sha256': _file_digest(path)}
  tmp = os.path.join(step_dir, MANIFEST_FILE + '.tmp')
  with open(tmp, 'w') as f:
    json.dump({'format': 1, 'files': dict(sorted(files.items()))}, f, indent=1)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, os.path.join(step_dir, MANIFEST_FILE))


def verify_checkpoint(step_dir, step=None):
  """Checks every file of the checkpoint in `step_dir` against its manifest.

  Raises CorruptCheckpointError naming the first damaged file. A checkpoint whose
  metadata says format 1 (written before manifests existed) has nothing to check.
  """
  manifest_path = os.path.join(step_dir, MANIFEST_FILE)
  def corrupt(path, problem):
    return CorruptCheckpointError(
        f'checkpoint {step} is damaged: {path} {problem}. plait refuses to load a damaged '
        'checkpoint; restore the file, or resume training from the previous checkpoint '
        '(plait-train --fallback_to_previous_checkpoint, '
        "LoopSettings(on_corrupt_checkpoint='previous')).", step, path)
  if not os.path.exists(manifest_path):
    meta_path = os.path.join(step_dir, 'meta', 'metadata')
    try:
      with open(meta_path) as f:
        if json.load(f).get('format', 1) < _FIRST_WITH_MANIFEST:
          return  # an old checkpoint without a manifest
    except (OSError, ValueError):
      raise corrupt(meta_path, 'is missing or unreadable (and there is no manifest)') from None
    raise corrupt(manifest_path, 'is missing')
  try:
    with open(manifest_path) as f:
      files = json.load(f)['files']
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise corrupt(manifest_path, f'is unreadable ({type(e).__name__}: {e})') from None
  for rel, expected in files.items():
    path = os.path.join(step_dir, rel)
    if not os.path.exists(path):
      raise corrupt(path, 'is missing')
    size = os.path.getsize(path)
    if size != expected['size']:
      raise corrupt(path, f'has {size} bytes, expected {expected["size"]} (truncated or '
                    'overwritten)')
    if _file_digest(path) != expected['sha256']:
      raise corrupt(path, 'has the wrong checksum (its contents changed after it was saved)')


def _paths(kind, model, tree, weights):
  """The leaves' paths of `tree`, one of the model's weights, state or opt_state."""
  if kind == 'opt_state':
    return weight_paths.opt_state_paths(model, weights, tree)
  return weight_paths.leaf_paths(model, tree)


def _describe_leaves(paths, tree):
  """[[name, shape, dtype, tree key, path], ...]: what meta records of each leaf of `tree`.

  The tree key (`[1].kernel`) is the leaf's place in the tree, independent of layer
  names (which hold sizes, e.g. Dense_16); the path is where the leaf is stored.
  """
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return [['/'.join(p), list(np.shape(x)), _dtype_name(x), jax.tree_util.keystr(k), list(p)]
          for p, (k, x) in zip(paths, flat)]


def _dtype_name(x):
  dtype = x.dtype
  if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
    return f'key<{jax.random.key_impl(x)}>'
  return str(np.dtype(dtype))


def _to_savable(x):
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(x)
  return x


def _check_match(kind, saved, target, where, by_position):
  """Raises CheckpointError naming every leaf whose path, shape or dtype differs.

  Leaves are matched by their tree key (`[1].kernel`), or with `by_position` (formats
  1 and 2, written before weights were NamedTuples) by their place in flatten order;
  names are for the message.
  """
  def keyed(entries):
    return {(i if by_position else e[3]): e for i, e in enumerate(entries)}
  saved_by_key, target_by_key = keyed(saved), keyed(target)
  problems = []
  for k, t in target_by_key.items():
    s = saved_by_key.get(k)
    if s is None:
      problems.append(f'  {t[0]}: in the model {list(t[1])} {t[2]}, missing from the checkpoint')
    elif list(s[1]) != list(t[1]) or s[2] != t[2]:
      saved_as = f' (saved as {s[0]})' if s[0] != t[0] else ''
      problems.append(f'  {t[0]}: checkpoint {list(s[1])} {s[2]}{saved_as}, '
                      f'model {list(t[1])} {t[2]}')
  for k, s in saved_by_key.items():
    if k not in target_by_key:
      problems.append(f'  {s[0]}: in the checkpoint {list(s[1])} {s[2]}, not in the model')
  if not problems:
    return
  shown = problems[:20] + ([f'  ... and {len(problems) - 20} more'] if len(problems) > 20 else [])
  owner = 'optimizer' if kind == 'opt_state' else 'model'
  what = {'weights': 'weights', 'state': 'state', 'opt_state': 'optimizer state'}[kind]
  raise CheckpointError(
      f'the checkpoint in {where} does not match: its {what} differ from this {owner}\'s '
      f'({len(problems)} mismatches):\n' + '\n'.join(shown) + '\nIt was written for a '
      'different model or settings: use another output_dir, or start afresh '
      '(plait-train --overwrite).')


def _by_key(saved, target):
  """The saved entries in the order of the target's (matched by tree key)."""
  saved_by_key = {e[3]: e for e in saved}
  return [saved_by_key[t[3]] for t in target]


class Checkpointer:
  """Saves and restores training checkpoints in `output_dir/checkpoints`.

  Args:
    output_dir: the training directory.
    keep_checkpoints: keep the latest N checkpoints (None = keep all).
    keep_best: also keep the best `n_best` checkpoints by this metric (a key of the
      `metrics` passed to `save`, e.g. 'eval/loss'); None = off.
    best_mode: 'min' or 'max': which values of `keep_best` are better.
    n_best: how many best checkpoints to keep.
    async_save: write checkpoints in the background.
    cleanup: remove temporary directories left by a killed save (off for readers such as
      `restore_model`, which may run while training is still writing).
  """

  def __init__(self, output_dir, keep_checkpoints=3, keep_best=None, best_mode='min',
               n_best=1, async_save=True, cleanup=True):
    if best_mode not in ('min', 'max'):
      raise ValueError(f"Checkpointer: best_mode must be 'min' or 'max', got {best_mode!r}.")
    if keep_checkpoints is not None and keep_checkpoints < 1:
      raise ValueError(f'Checkpointer: keep_checkpoints must be >= 1 or None, '
                       f'got {keep_checkpoints}.')
    self.directory = os.path.join(os.path.abspath(output_dir), CHECKPOINT_DIR)
    self.keep_best, self.best_mode = keep_best, best_mode
    policies = [ocp.checkpoint_managers.LatestN(n=keep_checkpoints)]
    if keep_best is not None:
      worst = np.inf if best_mode == 'min' else -np.inf
      def rank(metrics):  # NaN would make orbax's sort order arbitrary: never the best.
        value = _finite(metrics.get(keep_best))
        return worst if value is None else value
      policies.append(ocp.checkpoint_managers.BestN(
          get_metric_fn=rank, reverse=best_mode == 'min',
          n=n_best, keep_checkpoints_without_metrics=False))
    # Always orbax's async path: its post-finalization hook writes the manifest into the
    # temporary directory before the atomic rename. async_save=False waits after each save.
    self._async = async_save
    self._saving_step = None
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
        enable_async_checkpointing=True, create=True, cleanup_tmp_directories=cleanup,
        async_options=ocp.AsyncOptions(post_finalization_callback=self._write_manifest))
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def _write_manifest(self):
    """Runs in orbax's save thread after the files are written, before the rename."""
    step = self._saving_step
    prefix = f'{step}.orbax-checkpoint-tmp'
    tmp_dirs = [e for e in os.listdir(self.directory) if e.startswith(prefix)]
    if len(tmp_dirs) != 1:
      raise CheckpointError(f'Checkpointer: expected one temporary directory {prefix}* for '
                            f'step {step} in {self.directory}, found {tmp_dirs}; the orbax '
                            'version may have changed how it names them.')
    write_manifest(os.path.join(self.directory, tmp_dirs[0]))

  def all_steps(self):
    return sorted(self._manager.all_steps())

  def latest_step(self):
    return self._manager.latest_step()

  def save(self, step, model, weights, state, opt_state, rng, data_position, metrics=None):
    """Starts writing checkpoint `step` (returns before the files are written if async)."""
    meta = {'format': FORMAT, 'step': int(step), 'data': data_position,
            'metrics': dict(metrics or {})}
    items, n_bytes = {}, 0
    for kind, tree in zip(KINDS, (weights, state, opt_state)):
      paths, leaves = _paths(kind, model, tree, weights), jax.tree_util.tree_leaves(tree)
      meta[kind] = _describe_leaves(paths, tree)
      n_bytes += sum(x.nbytes if hasattr(x, 'nbytes') else np.asarray(x).nbytes for x in leaves)
      if leaves:
        try:
          items[kind] = ocp.args.PyTreeSave(
              weight_paths.nest(paths, [_to_savable(x) for x in leaves]))
        except ValueError as e:
          raise CheckpointError(f'Checkpointer: cannot save the {kind}: {e}') from None
    meta['rng'] = {'impl': str(jax.random.key_impl(rng)),
                   'data': np.asarray(jax.random.key_data(rng)).tolist()}
    if self.keep_best is not None:
      meta['best'] = {'metric': self.keep_best, 'mode': self.best_mode}  # read by best_step
    items['meta'] = ocp.args.JsonSave(meta)
    metrics = {k: float(v) for k, v in (metrics or {}).items()}
    self.wait()  # the manifest hook reads _saving_step
    self._saving_step = int(step)
    self._check_space(n_bytes)
    try:
      self._manager.save(int(step), args=ocp.args.Composite(**items), metrics=metrics or None,
                         force=True)
    except Exception as e:  # pylint: disable=broad-except
      raise self._write_failed(e) from e
    if not self._async:
      self.wait()

  def verify(self, step):
    """Raises CorruptCheckpointError if checkpoint `step` differs from its manifest."""
    verify_checkpoint(os.path.join(self.directory, str(step)), step)

  def resume_step(self, on_corrupt='error', message_fn=None):
    """The newest intact checkpoint's step (None if there is none).

    on_corrupt: 'error' raises CorruptCheckpointError if the newest checkpoint is
      damaged; 'previous' moves each damaged one to `output_dir/corrupt_checkpoints/`
      (kept for inspection, never deleted) and tries the one before.
    """
    if on_corrupt not in ('error', 'previous'):
      raise ValueError(f"Checkpointer: on_corrupt must be 'error' or 'previous', "
                       f'got {on_corrupt!r}.')
    for step in reversed(self.all_steps()):
      try:
        self.verify(step)
        return step
      except CorruptCheckpointError as e:
        if on_corrupt == 'error':
          raise
        moved = self._set_aside(step)
        if message_fn is not None:
          message_fn(f'{e.path} is damaged; moved checkpoint {step} to {moved} and trying '
                     'the previous one.')
    if on_corrupt == 'previous' and os.path.isdir(self._corrupt_dir()):
      raise CheckpointError(f'no intact checkpoint is left in {self.directory} (damaged ones are '
                            f'in {self._corrupt_dir()}); refusing to start afresh over them. '
                            'Use another output_dir, or plait-train --overwrite.')
    return None

  def _corrupt_dir(self):
    return os.path.join(os.path.dirname(self.directory), CORRUPT_DIR)

  def _set_aside(self, step):
    target = os.path.join(self._corrupt_dir(), str(step))
    n = 1
    while os.path.exists(target):
      target, n = os.path.join(self._corrupt_dir(), f'{step}.{n}'), n + 1
    os.makedirs(self._corrupt_dir(), exist_ok=True)
    os.rename(os.path.join(self.directory, str(step)), target)
    self._manager.reload()
    return target

  def read_meta(self, step):
    return _read_meta(self.directory, step)

  def restore(self, step, model, weights, state, opt_state=None, sharding=None):
    """Loads checkpoint `step` into the structure of the given (initialized) trees.

    `state` or `opt_state` None: not read. Returns a dict with 'weights', 'state',
    'opt_state' (None where not read), 'step', 'rng' and 'data' (the stream position).
    Raises CheckpointError naming the leaves that differ from the model.
    """
    self.verify(step)
    meta = self.read_meta(step)
    where = os.path.join(self.directory, str(step))
    version = meta.get('format', 1)
    if version > FORMAT:
      raise CheckpointError(f'the checkpoint in {where} has format {version}, newer than this '
                            f'plait reads ({FORMAT}); upgrade plait.')
    named = version >= 3
    targets = {kind: tree for kind, tree in zip(KINDS, (weights, state, opt_state))
               if tree is not None}
    flat = {kind: jax.tree_util.tree_flatten(tree) for kind, tree in targets.items()}
    expected = {kind: _describe_leaves(_paths(kind, model, tree, weights), tree)
                for kind, tree in targets.items()}
    for kind in targets:
      _check_match(kind, meta[kind], expected[kind], where, by_position=not named)
    def abstract(x):
      savable = jax.eval_shape(_to_savable, x)
      return jax.ShapeDtypeStruct(savable.shape, savable.dtype,
                                  sharding=sharding or _default_sharding(x))
    if named:  # one item per kind: nested dicts keyed by the paths the leaves were saved at
      saved_paths = {kind: [tuple(e[4]) for e in _by_key(meta[kind], expected[kind])]
                     for kind in flat}
      items = {kind: weight_paths.nest(saved_paths[kind], [abstract(x) for x in leaves])
               for kind, (leaves, _) in flat.items() if leaves}
      loaded = self._read_items(step, items)
      values = {kind: [weight_paths.pick(loaded[kind], p) for p in saved_paths[kind]]
                for kind in items}
    else:  # formats 1 and 2: one flat item `arrays`, leaves in flatten order
      keys = {kind: [f'{_FLAT_PREFIX[kind]}{i:05d}' for i in range(len(leaves))]
              for kind, (leaves, _) in flat.items()}
      target = {k: abstract(x) for kind, (leaves, _) in flat.items()
                for k, x in zip(keys[kind], leaves)}
      loaded = self._read_items(step, {'arrays': target} if target else {}, partial=True)
      values = {kind: [loaded['arrays'][k] for k in keys[kind]] for kind in flat}
    out = {'step': meta['step'], 'data': meta.get('data', {}), 'state': None, 'opt_state': None,
           'rng': jax.random.wrap_key_data(np.asarray(meta['rng']['data'], np.uint32),
                                           impl=meta['rng']['impl'])}
    for kind, (leaves, treedef) in flat.items():
      out[kind] = jax.tree_util.tree_unflatten(treedef, [
          jax.random.wrap_key_data(v, impl=jax.random.key_impl(x))
          if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else v
          for x, v in zip(leaves, values.get(kind, []))])
    return out

  def _read_items(self, step, items, partial=False):
    """Restores orbax items {name: tree of ShapeDtypeStructs} of checkpoint `step`."""
    if not items:
      return {}
    def restore_args(tree):
      return jax.tree_util.tree_map(lambda s: ocp.ArrayRestoreArgs(sharding=s.sharding), tree)
    return self._manager.restore(step, args=ocp.args.Composite(**{
        name: ocp.args.PyTreeRestore(tree, restore_args=restore_args(tree),
                                     partial_restore=partial)
        for name, tree in items.items()}))

  def wait(self):
    """Blocks until pending asynchronous saves are on disk; a failed one raises OSError."""
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise self._write_failed(e) from e

  def _check_space(self, n_bytes):
    """Raises OSError(ENOSPC) before writing if the disk cannot hold the checkpoint.

    A save that runs out of space part-way fails in orbax's threads and tensorstore's, which
    print their own tracebacks; checking first says it in one line and writes nothing. Skipped
    where the free space cannot be read (e.g. a cloud bucket path).
    """
    try:
      free = shutil.disk_usage(self.directory).free
    except OSError:
      return
    needed = int(n_bytes * _SPACE_MARGIN) + _SPACE_OVERHEAD
    if free < needed:
      failure = OSError(f'could not write checkpoint {self._saving_step} in {self.directory}: '
                        f'No space left on device (needs about {needed / 2**20:.1f} MiB, '
                        f'{free / 2**20:.1f} MiB free)')
      failure.errno = errno.ENOSPC
      raise failure

  def _write_failed(self, error):
    """One OSError for a save that failed (in orbax's thread or not): step, directory, cause.

    orbax reports a full disk as a ValueError carrying tensorstore's message, or an OSError
    from a metadata write; either way the cause is named and the errno kept where known.
    """
    text = str(error)
    cause = next((c for c in _OS_CAUSES if c in text), None)
    if cause is None:
      cause = f'{type(error).__name__}: {text.splitlines()[0][:300] if text else ""}'
    failure = OSError(f'could not write checkpoint {self._saving_step} in {self.directory}: '
                      f'{cause}')
    failure.errno = getattr(error, 'errno', None) or _OS_CAUSES.get(cause)
    return failure

  def close(self):
    self.wait()
    self._manager.close()


# A checkpoint's size on disk is about its arrays' bytes plus metadata files (measured:
# orbax's OCDBT files + manifest + meta, ~40 KiB for small models).
_SPACE_MARGIN, _SPACE_OVERHEAD = 1.05, 256 * 1024

# Operating-system causes of a failed write, as they appear in orbax's and tensorstore's
# messages, with their errno.
_OS_CAUSES = {'No space left on device': errno.ENOSPC, 'Disk quota exceeded': errno.EDQUOT,
              'Read-only file system': errno.EROFS, 'Permission denied': errno.EACCES}


def _read_meta(directory, step):
  """The meta JSON of checkpoint `step` in `directory` (output_dir/checkpoints)."""
  path = os.path.join(directory, str(step), 'meta', 'metadata')
  if not os.path.exists(path):
    raise CheckpointError(f'checkpoint {step} in {directory} has no metadata ({path}); '
                          'it is not a plait checkpoint or it is damaged.')
  try:
    with open(path) as f:
      return json.load(f)
  except ValueError as e:
    raise CheckpointError(f'checkpoint {step}: {path} is not valid JSON ({e}); the checkpoint '
                          'is damaged.') from None


def _finite(value):
  """`value` as a float, or None if it is missing, not a number, NaN or infinite."""
  try:
    value = float(value)
  except (TypeError, ValueError):
    return None
  return value if math.isfinite(value) else None


def _default_sharding(x):
  sharding = getattr(x, 'sharding', None)
  if sharding is not None and not isinstance(x, jax.ShapeDtypeStruct):
    return sharding
  return jax.sharding.SingleDeviceSharding(jax.devices()[0])


def has_checkpoint(output_dir):
  """True if `output_dir` holds at least one complete checkpoint."""
  return bool(_complete_steps(output_dir))


def _complete_steps(output_dir):
  directory = os.path.join(output_dir, CHECKPOINT_DIR)
  if not os.path.isdir(directory):
    return []
  steps = []
  for entry in os.listdir(directory):
    if entry.isdigit() and os.path.exists(os.path.join(directory, entry, 'meta', 'metadata')):
      steps.append(int(entry))
  return sorted(steps)


Best = collections.namedtuple('Best', 'step metric mode value')


def best_checkpoint(output_dir):
  """Best(step, metric, mode, value) of the best complete checkpoint in `output_dir`.

  The metric and mode are the run's `keep_best` and `best_mode`, as recorded in the
  newest checkpoint that has them. Among the checkpoints that measured the metric
  (finite values only), the best value wins; on ties, the later step.
  Raises CheckpointError saying what to do if there is none.
  """
  steps = _require_steps(output_dir, 'best_step')
  directory = os.path.join(output_dir, CHECKPOINT_DIR)
  metas = {step: _read_meta(directory, step) for step in steps}
  ranked = [meta['best'] for meta in metas.values() if meta.get('best')]
  if not ranked:
    raise CheckpointError(
        f'best_step: the run in {output_dir} does not keep a best checkpoint (no keep_best '
        f"metric recorded); set LoopSettings.keep_best = 'eval/loss' in the config "
        f'(LoopSettings(keep_best=...) in Python) and train on, or pick a step: saved steps '
        f'{steps}.')
  metric, mode = ranked[-1]['metric'], ranked[-1].get('mode', 'min')
  sign = 1.0 if mode == 'min' else -1.0
  best = None
  for step in steps:
    value = _finite((metas[step].get('metrics') or {}).get(metric))
    if value is not None and (best is None or sign * value <= sign * best.value):
      best = Best(step, metric, mode, value)
  if best is None:
    raise CheckpointError(
        f'best_step: no checkpoint in {output_dir} has a finite value of {metric!r} (saved '
        f'steps {steps}); evaluate at checkpoint steps so they record it, or pick a step.')
  return best


def best_step(output_dir):
  """The step of the best complete checkpoint by the run's keep_best metric.

  See `best_checkpoint`, which also returns the metric and its value.
  """
  return best_checkpoint(output_dir).step


def _require_steps(output_dir, caller):
  """The complete checkpoints' steps, or CheckpointError saying to train first."""
  steps = _complete_steps(output_dir)
  if not steps:
    raise CheckpointError(f'{caller}: no complete checkpoint in '
                          f'{os.path.join(output_dir, CHECKPOINT_DIR)}; train first '
                          f'(plait-train --output_dir={output_dir} ...).')
  return steps


def resolve_step(output_dir, step=None, caller='restore'):
  """The checkpoint step to load: `step` (an int), the latest (None) or the best ('best').

  Raises CheckpointError if there is no checkpoint or `step` is not saved (listing the
  saved steps).
  """
  steps = _require_steps(output_dir, caller)
  if step is None:
    return steps[-1]
  if isinstance(step, str):
    if step != BEST:
      raise CheckpointError(f"{caller}: step must be an int, None (latest) or 'best', "
                            f'got {step!r}.')
    return best_step(output_dir)
  if step not in steps:
    raise CheckpointError(f'{caller}: no checkpoint for step {step} in {output_dir}; '
                          f'available steps: {steps}.')
  return int(step)


def restore_model(output_dir, model, input_signature, step=None, rng=None):
  """Loads a trained model's weights and state from `output_dir`.

  Initializes `model` for `input_signature` (abstractly, no compute) to get the
  expected structure, checks every leaf's path, shape and dtype against the
  checkpoint (raising CheckpointError naming any mismatched weights), and loads
  the latest complete checkpoint, checkpoint `step`, or with step='best' the best
  one by the run's keep_best metric (see `best_step`). The optimizer state is not read.
  Also remembers the result on the model, so `model(x)` works afterwards.

  Returns:
    (weights, state, step).
  """
  weights, state, step = read_model(output_dir, model, input_signature, step, rng)
  model.weights, model.state = weights, state
  return weights, state, step


def read_model(output_dir, model, input_signature, step=None, rng=None, with_state=True,
               caller='restore_model'):
  """(weights, state, step) from `output_dir`'s checkpoint, leaving `model` untouched.

  The one reader behind `restore_model` and `decoding.restore_weights`; with
  `with_state=False` the layer state is not read (state is None).
  """
  step = resolve_step(output_dir, step, caller)
  rng = jax.random.key(0) if rng is None else rng
  weights, state = jax.eval_shape(lambda: model.init(input_signature, rng))
  # A reader: leave the temporary directories of a training run that may still be saving.
  checkpointer = Checkpointer(output_dir, keep_checkpoints=None, async_save=False, cleanup=False)
  try:
    restored = checkpointer.restore(step, model, weights, state if with_state else None)
  finally:
    checkpointer.close()
  return restored['weights'], restored['state'], restored['step']


def save_tokenizer(tokenizer, output_dir):
  """Stores the tokenizer next to the checkpoints in `output_dir/tokenizer/`.

  `tokenizer` is an object with `save(directory)`, a path to a vocab/model file,
  or a list of such paths. Returns the directory.
  """
  directory = os.path.join(output_dir, TOKENIZER_DIR)
  os.makedirs(directory, exist_ok=True)
  if hasattr(tokenizer, 'save') and callable(tokenizer.save):
    tokenizer.save(directory)
    return directory
  paths = [tokenizer] if isinstance(tokenizer, (str, os.PathLike)) else list(tokenizer)
  for path in paths:
    if not os.path.isfile(path):
      raise CheckpointError(f'save_tokenizer: {path} is not a file; pass a tokenizer with '
                            'save(directory) or the paths of its vocab/model files.')
    shutil.copy2(path, directory)
  return directory


def tokenizer_dir(output_dir):
  """The directory holding the run's tokenizer files, or None.

  `output_dir/tokenizer/` (written by `save_tokenizer`), else `output_dir` itself if
  it holds tokenizer.json/tokenizer.model (plait.data's `vocab_dir=output_dir`).
  """
  directory = os.path.join(output_dir, TOKENIZER_DIR)
  if os.path.isdir(directory) and os.listdir(directory):
    return directory
  if any(os.path.exists(os.path.join(output_dir, n))
         for n in ('tokenizer.json', 'tokenizer.model')):
    return output_dir
  return None
