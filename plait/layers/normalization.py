"""Normalization over the last axis: LayerNorm and RMSNorm (statistics in at least float32)."""
from typing import NamedTuple

import jax
import jax.numpy as jnp

from plait.layers.base import Layer
from plait.layers.core import require_float


class LayerNormWeights(NamedTuple):
  """LayerNorm's weights: scale and bias, (d,) float32; bias is () with center=False."""
  scale: jax.Array
  bias: jax.Array | tuple = ()


class LayerNorm(Layer):
  """(x - mean) / sqrt(var + epsilon) * scale + bias, over the last axis.

  Weights: `LayerNormWeights(scale, bias)`.
  """

  def __init__(self, epsilon=1e-6, center=True):
    super().__init__(name='LayerNorm')
    self._epsilon, self._center = epsilon, center

  def forward(self, x, weights, state, rng):
    require_float(x, self.name)
    x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean = jnp.mean(x32, axis=-1, keepdims=True) if self._center else 0.0
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jnp.reciprocal(jnp.sqrt(var + self._epsilon)) * weights.scale
    if self._center:
      y = y + weights.bias
    return y.astype(x.dtype), state

  def init_weights_and_state(self, input_signature, rng):
    d = input_signature.shape[-1]
    scale = jnp.ones((d,), jnp.float32)
    if not self._center:
      return LayerNormWeights(scale), ()
    return LayerNormWeights(scale, jnp.zeros((d,), jnp.float32)), ()


class RMSNormWeights(NamedTuple):
  """RMSNorm's weights: scale, (d,) float32."""
  scale: jax.Array


class RMSNorm(Layer):
  """x / sqrt(mean(x^2) + epsilon) * scale, over the last axis. Weights: `RMSNormWeights(scale)`."""

  def __init__(self, epsilon=1e-6):
    super().__init__(name='RMSNorm')
    self._epsilon = epsilon

  def forward(self, x, weights, state, rng):
    require_float(x, self.name)
    x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    ms = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    y = x32 * jnp.reciprocal(jnp.sqrt(ms + self._epsilon)) * weights.scale
    return y.astype(x.dtype), state

  def init_weights_and_state(self, input_signature, rng):
    return RMSNormWeights(jnp.ones((input_signature.shape[-1],), jnp.float32)), ()
