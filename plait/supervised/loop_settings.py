"""LoopSettings: how a training run checkpoints, evaluates, logs and keeps its results.

One small frozen object for the Loop's knobs, shared by `Loop(settings=...)` in Python
and `plait-train` (gin binds it by name):

  >>> Loop(model, task, output_dir='/tmp/run',
  ...      settings=LoopSettings(checkpoint_every=500, keep_best='eval/loss'))

  # in a gin config
  LoopSettings.checkpoint_every = 500
  LoopSettings.compute_dtype = 'bfloat16'

Every value is checked when the object is made, so a bad setting is one ValueError
naming it, before a model is built or a file is written.
"""
import dataclasses

PROGRESS_STYLES = ('auto', 'bar', 'lines', 'none')
CORRUPT_CHECKPOINT_POLICIES = ('error', 'previous')


@dataclasses.dataclass(frozen=True)
class LoopSettings:
  """The training Loop's settings.

  Attributes:
    checkpoint_every: steps between checkpoints (None: only at the end of each run).
    eval_every: steps between evaluations (None: the checkpoint steps). The last step of
      every run is evaluated too.
    keep_checkpoints: keep the latest N checkpoints (None: all).
    keep_best: also keep the best checkpoint by this metric: 'loss' (mean train loss since
      the last checkpoint) or '<eval task>/<metric>', e.g. 'eval/loss'.
    best_mode: 'min' or 'max': which value of `keep_best` is best.
    compute_dtype: None (as initialized) or e.g. 'bfloat16': forward and backward in that
      dtype, float32 master weights and optimizer state.
    seed: weight init and the per-step rngs.
    log_every: with plain-line progress, print every so many steps.
    progress: 'auto' (a bar on a terminal, lines otherwise), 'bar', 'lines' or 'none'.
    async_checkpointing: write checkpoints in the background.
    tensorboard: also write TensorBoard event files.
    on_corrupt_checkpoint: 'error' refuses to start from a damaged latest checkpoint
      (naming the file); 'previous' moves damaged ones to output_dir/corrupt_checkpoints/
      and resumes from the newest intact one.
  """
  checkpoint_every: int | None = 100
  eval_every: int | None = None
  keep_checkpoints: int | None = 3
  keep_best: str | None = None
  best_mode: str = 'min'
  compute_dtype: str | None = None
  seed: int = 0
  log_every: int = 100
  progress: str = 'auto'
  async_checkpointing: bool = True
  tensorboard: bool = True
  on_corrupt_checkpoint: str = 'error'

  def __post_init__(self):
    for name in ('checkpoint_every', 'eval_every', 'keep_checkpoints'):
      _check_count(name, getattr(self, name), allow_none=True)
    _check_count('log_every', self.log_every, allow_none=False)
    _check_choice('best_mode', self.best_mode, ('min', 'max'))
    _check_choice('progress', self.progress, PROGRESS_STYLES)
    _check_choice('on_corrupt_checkpoint', self.on_corrupt_checkpoint,
                  CORRUPT_CHECKPOINT_POLICIES)
    if self.keep_best is not None and not isinstance(self.keep_best, str):
      raise ValueError(f'LoopSettings.keep_best must be a metric name such as '
                       f"'eval/loss' or None, got {self.keep_best!r}.")
    if not isinstance(self.seed, int) or isinstance(self.seed, bool):
      raise ValueError(f'LoopSettings.seed must be an int, got {self.seed!r}.')
    if self.compute_dtype is not None:
      import jax.numpy as jnp  # pylint: disable=g-import-not-at-top  (keeps the CLIs light)
      try:
        dtype = jnp.dtype(self.compute_dtype)
      except TypeError:
        dtype = None
      if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f'LoopSettings.compute_dtype must be a floating dtype such as '
                         f"'bfloat16' or None, got {self.compute_dtype!r}.")

  @property
  def compute_jnp_dtype(self):
    """`compute_dtype` as a numpy dtype (None stays None)."""
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    return None if self.compute_dtype is None else jnp.dtype(self.compute_dtype)

  @property
  def eval_period(self):
    """Steps between evaluations: `eval_every`, else `checkpoint_every`."""
    return self.eval_every if self.eval_every is not None else self.checkpoint_every


def _check_count(name, value, allow_none):
  if value is None and allow_none:
    return
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    allowed = 'a whole number >= 1' + (' or None' if allow_none else '')
    raise ValueError(f'LoopSettings.{name} must be {allowed}, got {value!r}.')


def _check_choice(name, value, choices):
  if value not in choices:
    raise ValueError(f'LoopSettings.{name} must be one of {", ".join(map(repr, choices))}, '
                     f'got {value!r}.')
