"""Learning-rate schedules: functions from the step number to a learning rate.

A schedule takes the 1-based number of the update being made (the first update
is step 1, as in Trax) and returns the learning rate for it. Schedules use only
`jnp` ops, so they run inside a jitted train step as well as in Python:

  >>> lr = multifactor(constant=0.1, warmup_steps=400)
  >>> round(float(lr(400)), 6)   # 0.1 * 1.0 * 1/sqrt(400)
  0.005

Optimizers in `plait.supervised.optimizers` accept a schedule as their
`learning_rate`; the trainer builds a schedule by calling its gin-configured
factory with no arguments (`train.lr_schedule = @multifactor`).
"""
import jax.numpy as jnp

_FACTORS = ('constant', 'linear_warmup', 'rsqrt_decay', 'rsqrt_normalized_decay',
            'decay_every', 'cosine_decay')


def constant(value=1e-3):
  """The same learning rate at every step."""
  def schedule(step):
    del step
    return jnp.asarray(value, jnp.float32)
  return schedule


def warmup(n_warmup_steps=1000, max_value=1e-3):
  """Linear rise from max_value/n_warmup_steps at step 1 to max_value at n_warmup_steps, then flat."""
  _check_positive(n_warmup_steps=n_warmup_steps)
  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    return max_value * jnp.minimum(1.0, step / n_warmup_steps)
  return schedule


def warmup_and_rsqrt_decay(n_warmup_steps=1000, max_value=1e-3):
  """Linear warmup to `max_value`, then decay as max_value * sqrt(n_warmup_steps / step)."""
  _check_positive(n_warmup_steps=n_warmup_steps)
  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    rise = step / n_warmup_steps
    decay = jnp.sqrt(n_warmup_steps / jnp.maximum(step, 1.0))
    return max_value * jnp.minimum(rise, decay)
  return schedule


def cosine(max_value=1e-3, n_steps=100_000, n_warmup_steps=0, min_value=0.0):
  """Optional linear warmup, then half a cosine from max_value to min_value at n_steps."""
  _check_positive(n_steps=n_steps)
  if not 0 <= n_warmup_steps < n_steps:
    raise ValueError(f'cosine: need 0 <= n_warmup_steps < n_steps, got {n_warmup_steps}, {n_steps}.')
  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    rise = jnp.minimum(1.0, step / max(n_warmup_steps, 1)) if n_warmup_steps else 1.0
    progress = jnp.clip((step - n_warmup_steps) / (n_steps - n_warmup_steps), 0.0, 1.0)
    value = min_value + 0.5 * (max_value - min_value) * (1.0 + jnp.cos(jnp.pi * progress))
    return rise * value
  return schedule


def multifactor(factors='constant * linear_warmup * rsqrt_decay', constant=0.1,  # pylint: disable=redefined-outer-name
                warmup_steps=400, decay_factor=0.5, steps_per_decay=20_000,
                steps_per_cycle=100_000):
  """Trax-style product of named factors, e.g. 'constant * linear_warmup * rsqrt_decay'.

  Factors:
    constant: `constant`.
    linear_warmup: min(1, step / warmup_steps).
    rsqrt_decay: 1 / sqrt(max(step, warmup_steps)).
    rsqrt_normalized_decay: sqrt(warmup_steps) / sqrt(max(step, warmup_steps)).
    decay_every: decay_factor ** (step // steps_per_decay).
    cosine_decay: 0.5 * (1 + cos(pi * (step % steps_per_cycle) / steps_per_cycle)).
  """
  names = [f.strip() for f in factors.split('*') if f.strip()]
  unknown = [n for n in names if n not in _FACTORS]
  if unknown or not names:
    raise ValueError(f'multifactor: unknown factor(s) {unknown} in {factors!r}; '
                     f'known factors: {", ".join(_FACTORS)}.')
  if 'linear_warmup' in names or 'rsqrt_normalized_decay' in names:
    _check_positive(warmup_steps=warmup_steps)
  if 'decay_every' in names:
    _check_positive(steps_per_decay=steps_per_decay)
  if 'cosine_decay' in names:
    _check_positive(steps_per_cycle=steps_per_cycle)

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    value = jnp.ones((), jnp.float32)
    for name in names:
      if name == 'constant':
        value = value * constant
      elif name == 'linear_warmup':
        value = value * jnp.minimum(1.0, step / warmup_steps)
      elif name == 'rsqrt_decay':
        value = value / jnp.sqrt(jnp.maximum(step, max(warmup_steps, 1)))
      elif name == 'rsqrt_normalized_decay':
        value = value * jnp.sqrt(warmup_steps) / jnp.sqrt(jnp.maximum(step, warmup_steps))
      elif name == 'decay_every':
        value = value * decay_factor ** jnp.floor(step / steps_per_decay)
      else:  # cosine_decay
        progress = jnp.mod(step, steps_per_cycle) / steps_per_cycle
        value = value * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    return value
  return schedule


def _check_positive(**values):
  for name, v in values.items():
    if not v > 0:
      raise ValueError(f'{name} must be > 0, got {v!r}.')


__all__ = ['constant', 'warmup', 'warmup_and_rsqrt_decay', 'cosine', 'multifactor']
