"""Weight initializers: functions (rng, shape) -> float32 array."""
import jax
import jax.numpy as jnp
import numpy as np


def zeros(rng, shape):
  del rng
  return jnp.zeros(shape, jnp.float32)


def ones(rng, shape):
  del rng
  return jnp.ones(shape, jnp.float32)


def normal(stddev=1.0):
  def init(rng, shape):
    return stddev * jax.random.normal(rng, shape, jnp.float32)
  return init


def glorot_uniform(rng, shape):
  """Uniform in +-sqrt(6 / (fan_in + fan_out)) over the last two axes."""
  fan_in, fan_out = (shape[-2], shape[-1]) if len(shape) >= 2 else (shape[-1], shape[-1])
  limit = np.sqrt(6.0 / (fan_in + fan_out))
  return jax.random.uniform(rng, shape, jnp.float32, -limit, limit)
