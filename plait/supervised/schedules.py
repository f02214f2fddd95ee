"""Learning-rate schedules: optax schedules under the names gin configs use.

A schedule takes the 1-based number of the update being made (the first update is step 1,
as in Trax) and returns the learning rate for it; the optimizers in
`plait.supervised.optimizers` call it with optax's 0-based count + 1. Each name below is a
thin alias that builds optax schedules (`optax.linear_schedule`,
`optax.warmup_cosine_decay_schedule`, `optax.join_schedules`, `optax.exponential_decay`,
...); only the inverse-square-root decay, which optax lacks, is written here. They are jnp
functions, so they run inside a jitted step as well as in Python:

  >>> lr = multifactor(constant=0.1, warmup_steps=400)
  >>> round(float(lr(400)), 6)   # 0.1 * 1.0 * 1/sqrt(400)
  0.005

The trainer builds a schedule by calling its gin-configured factory with no arguments
(`train.lr_schedule = @multifactor`). Any optax schedule works as well, as `step -> value`.
"""
import jax
import jax.numpy as jnp
import optax

_FACTORS = ('constant', 'linear_warmup', 'rsqrt_decay', 'rsqrt_normalized_decay',
            'decay_every', 'cosine_decay')


def constant(value=1e-3):
  """The same learning rate at every step."""
  return optax.constant_schedule(jnp.float32(value))


def warmup(n_warmup_steps=1000, max_value=1e-3):
  """Linear rise from max_value/n_warmup_steps at step 1 to max_value at n_warmup_steps, then flat."""
  _check_positive(n_warmup_steps=n_warmup_steps)
  return optax.linear_schedule(0.0, max_value, n_warmup_steps)


def warmup_and_rsqrt_decay(n_warmup_steps=1000, max_value=1e-3):
  """Linear warmup to `max_value`, then decay as max_value * sqrt(n_warmup_steps / step)."""
  _check_positive(n_warmup_steps=n_warmup_steps)
  decay = lambda steps_after: max_value * _rsqrt_decay(steps_after + n_warmup_steps,
                                                       n_warmup_steps)
  return optax.join_schedules([warmup(n_warmup_steps, max_value), decay], [n_warmup_steps])


def cosine(max_value=1e-3, n_steps=100_000, n_warmup_steps=0, min_value=0.0):
  """Optional linear warmup, then half a cosine from max_value to min_value at n_steps."""
  _check_positive(n_steps=n_steps)
  if not 0 <= n_warmup_steps < n_steps:
    raise ValueError(f'cosine: need 0 <= n_warmup_steps < n_steps, got {n_warmup_steps}, {n_steps}.')
  if max_value == 0:  # optax divides by the peak
    return constant(0.0)
  return optax.warmup_cosine_decay_schedule(0.0, max_value, n_warmup_steps, n_steps, min_value)


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
  cycle = optax.cosine_decay_schedule(1.0, steps_per_cycle)
  made = {
      'constant': lambda step: constant,
      'linear_warmup': optax.linear_schedule(0.0, 1.0, warmup_steps),
      'rsqrt_decay': lambda step: jax.lax.rsqrt(
          jnp.maximum(jnp.asarray(step, jnp.float32), max(warmup_steps, 1))),
      'rsqrt_normalized_decay': lambda step: _rsqrt_decay(step, warmup_steps),
      'decay_every': optax.exponential_decay(1.0, steps_per_decay, decay_factor,
                                             staircase=True),
      'cosine_decay': lambda step: cycle(jnp.mod(step, steps_per_cycle)),
  }
  parts = [made[n] for n in names]

  def schedule(step):
    value = jnp.ones((), jnp.float32)
    for part in parts:
      value = value * part(step)
    return value
  return schedule


def _rsqrt_decay(step, n_warmup_steps):
  """sqrt(n_warmup_steps / max(step, n_warmup_steps)): 1 up to n_warmup_steps, then falling."""
  step = jnp.asarray(step, jnp.float32)
  return jnp.sqrt(n_warmup_steps / jnp.maximum(step, n_warmup_steps))


def _check_positive(**values):
  for name, v in values.items():
    if not v > 0:
      raise ValueError(f'{name} must be > 0, got {v!r}.')


__all__ = ['constant', 'warmup', 'warmup_and_rsqrt_decay', 'cosine', 'multifactor']
