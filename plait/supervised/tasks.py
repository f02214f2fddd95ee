"""TrainTask and EvalTask: what to train on and how; what to measure and on what.

A batch is a tuple `(inputs, targets, weights)` of arrays (more inputs are
fine: the model pops `model.n_in` values and the loss or metric layer pops its
`n_in` from what the model pushed followed by the rest of the batch).
"""
import functools
import inspect

import jax
import optax

from plait.supervised import schedules
from plait.supervised.streams import BatchStream


class TrainTask:
  """Training data, loss and optimizer.

  Args:
    labeled_data: iterator of batches, or a zero-argument callable returning one (see
      `plait.supervised.streams` for how its position is checkpointed).
    loss_layer: a weightless layer (model_output, targets, weights) -> scalar,
      e.g. `plait.layers.CrossEntropyLoss()`.
    optimizer: an optimizer factory taking `learning_rate` (e.g.
      `plait.supervised.optimizers.Adam`, or a `functools.partial` of it), or a
      built `optax.GradientTransformation` (then `lr_schedule` must be None).
    lr_schedule: step -> learning rate (`plait.supervised.schedules`); None uses the
      optimizer factory's default learning rate.

  How often to checkpoint and evaluate is the Loop's business (`LoopSettings`).
  """

  def __init__(self, labeled_data, loss_layer, optimizer, lr_schedule=None):
    self.stream = BatchStream(labeled_data, name='train')
    self.loss_layer = loss_layer
    self.optimizer, self.lr_schedule = _build_optimizer(optimizer, lr_schedule)
    # The optimizer already runs the schedule inside the jitted train step, so it traces.
    self._host_schedule = None if self.lr_schedule is None else jax.jit(self.lr_schedule)

  def learning_rate(self, step):
    """The learning rate used for update number `step` (None if unknown).

    Evaluated on the host CPU: on an accelerator the schedule's small ops would queue
    behind the training step being computed and wait for it (the Loop asks while that
    step runs). Jitted: one call instead of one dispatch per op (0.05 ms instead of 0.7
    for `multifactor`'s warm-up and cosine decay on a 2-core host).
    """
    if self._host_schedule is None:
      return None
    with jax.default_device(_host_cpu()):
      return float(self._host_schedule(step))


@functools.cache
def _host_cpu():
  """The host's CPU device, or None (= JAX's default) when the CPU backend is switched off.

  Looked up once: the Loop asks for a learning rate on every step.
  """
  try:
    return jax.local_devices(backend='cpu')[0]
  except RuntimeError:
    return None


class EvalTask:
  """Evaluation data and metrics.

  Args:
    labeled_data: iterator of batches, or a zero-argument callable returning one. A
      callable is called afresh at every evaluation, so every evaluation sees the
      same batches; an iterator just continues.
    metrics: weightless layers (model_output, targets, weights) -> scalar, e.g.
      `[CrossEntropyLoss(), Accuracy()]`.
    metric_names: names in the metrics log (default: the layers' names, except that the
      Loop records a metric named like the training loss layer as 'loss', as in the train
      records; see `metrics_log.eval_metric_names`).
    n_eval_batches: batches per evaluation; reported values are means over batches.
    name: this task's name in logs (e.g. 'eval', 'eval_long').
  """

  def __init__(self, labeled_data, metrics, metric_names=None, n_eval_batches=1, name='eval'):
    metrics = list(metrics)
    if not metrics:
      raise ValueError('EvalTask needs at least one metric layer.')
    if n_eval_batches < 1:
      raise ValueError(f'n_eval_batches must be >= 1, got {n_eval_batches}.')
    names = list(metric_names) if metric_names is not None else [m.name for m in metrics]
    if len(names) != len(metrics):
      raise ValueError(f'{len(metrics)} metrics but {len(names)} metric_names.')
    if len(set(names)) != len(names):
      raise ValueError(f'metric names must be distinct, got {names}; pass metric_names=.')
    self.stream = BatchStream(labeled_data, name=name)
    self.metrics = metrics
    self.metric_names = names
    self.n_eval_batches = n_eval_batches
    self.name = name


def _build_optimizer(optimizer, lr_schedule):
  """Returns (optax transformation, schedule or None)."""
  if isinstance(optimizer, optax.GradientTransformation):
    if lr_schedule is not None:
      raise ValueError('TrainTask: optimizer is already built, so lr_schedule cannot be applied. '
                       'Pass the factory (e.g. optimizers.Adam) instead, or leave lr_schedule=None.')
    return optimizer, None
  if not callable(optimizer):
    raise TypeError(f'TrainTask: optimizer must be an optimizer factory such as '
                    f'plait.supervised.optimizers.Adam or an optax transformation; got {optimizer!r}.')
  if lr_schedule is None:
    default = _default_learning_rate(optimizer)
    lr_schedule = schedules.constant(default) if isinstance(default, (int, float)) else None
    tx = optimizer()
  else:
    if not callable(lr_schedule):
      lr_schedule = schedules.constant(float(lr_schedule))
    tx = optimizer(learning_rate=lr_schedule)
  if not isinstance(tx, optax.GradientTransformation):
    raise TypeError(f'TrainTask: optimizer factory {optimizer!r} returned {type(tx).__name__}, '
                    'not an optax.GradientTransformation.')
  return tx, lr_schedule


def _default_learning_rate(factory):
  try:
    param = inspect.signature(factory).parameters.get('learning_rate')
  except (TypeError, ValueError):
    return None
  return None if param is None else param.default
