"""Basic layers: Dense, Embedding, Dropout, activations, Flatten, ShiftRight."""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from plait.layers import initializers as init
from plait.layers.base import Fn, Layer

MODES = ('train', 'eval', 'predict')


def check_mode(mode, name):
  if mode not in MODES:
    raise ValueError(f'{name}: mode must be one of {MODES}, got {mode!r}.')
  return mode


def require_float(x, name):
  """TypeError unless `x` is floating: integer or bool inputs would be computed in their own
  dtype (weights cast to int: outputs all 0 or truncated; bool stays bool)."""
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f'{name} expects floating inputs, got {x.dtype}; cast them first, e.g. '
                    'x.astype(jnp.float32) (token ids go through an Embedding).')


class DenseWeights(NamedTuple):
  """Dense's weights: kernel (d_in, n_units) and bias (n_units,), or () with use_bias=False."""
  kernel: jax.Array
  bias: jax.Array | tuple = ()


class Dense(Layer):
  """y = x @ kernel + bias over the last axis: (..., d_in) -> (..., n_units).

  Weights: `DenseWeights(kernel, bias)`.

    >>> Dense(64).init(ShapeDtype((8, 32)))[0].kernel.shape
    (32, 64)
  """

  def __init__(self, n_units, use_bias=True, kernel_initializer=init.glorot_uniform,
               bias_initializer=init.zeros):
    super().__init__(name=f'Dense_{n_units}')
    self._n_units, self._use_bias = n_units, use_bias
    self._kernel_init, self._bias_init = kernel_initializer, bias_initializer

  def forward(self, x, weights, state, rng):
    require_float(x, 'Dense')
    y = jnp.dot(x, weights.kernel.astype(x.dtype))
    if self._use_bias:
      y = y + weights.bias.astype(x.dtype)
    return y, state

  def init_weights_and_state(self, input_signature, rng):
    d_in = input_signature.shape[-1]
    rng_w, rng_b = jax.random.split(rng)
    kernel = self._kernel_init(rng_w, (d_in, self._n_units))
    if not self._use_bias:
      return DenseWeights(kernel), ()
    return DenseWeights(kernel, self._bias_init(rng_b, (self._n_units,))), ()


class EmbeddingWeights(NamedTuple):
  """Embedding's weights: the (vocab_size, d_feature) table."""
  embedding: jax.Array


@jax.custom_vjp
def embedding_rows(table, ids):
  """table[ids]: (V, d), int (...,) in [0, V) -> (..., d), with a float32-summed gradient.

  The table's gradient adds every token's row gradient into its id's row. jnp.take's own
  gradient does that with a scatter-add in the table's dtype: in bf16 (mixed precision) it
  rounds after each of the N/V additions per row, and on the GPU it is a compare-and-swap
  loop per element that collides on every repeated id: with a small vocabulary and many
  tokens (LRA Pathfinder: 256 ids, 512 x 1024 tokens a batch) it took 1.66 s of a 1.7 s
  training step on an H200 (benchmarks/RESULTS.md section 20). Here the sum runs in float32
  (native atomic adds on the GPU) and is rounded to the table's dtype once. A custom VJP:
  reverse mode only (jax.jvp through it raises; plait trains by reverse mode).

    >>> embedding_rows(jnp.eye(3), jnp.array([2, 0]))   # [[0, 0, 1], [1, 0, 0]]
  """
  return jnp.take(table, ids, axis=0)


def _embedding_rows_fwd(table, ids):
  return jnp.take(table, ids, axis=0), (table, ids)


def _embedding_rows_bwd(residuals, d_rows):
  table, ids = residuals
  d_table = jnp.zeros(table.shape, jnp.float32).at[ids.reshape(-1)].add(
      d_rows.reshape(-1, table.shape[-1]).astype(jnp.float32))
  return d_table.astype(table.dtype), None


embedding_rows.defvjp(_embedding_rows_fwd, _embedding_rows_bwd)


class Embedding(Layer):
  """Integer ids (...,) -> vectors (..., d_feature). Weights: `EmbeddingWeights(embedding)`.

  Ids must be in [0, vocab_size): eager calls raise on others; under jit they give NaN rows.
  """

  def __init__(self, vocab_size, d_feature, initializer=init.normal(1.0)):
    super().__init__(name=f'Embedding_{vocab_size}_{d_feature}')
    self._vocab_size, self._d_feature, self._init = vocab_size, d_feature, initializer

  def forward(self, x, weights, state, rng):
    if not jnp.issubdtype(x.dtype, jnp.integer):
      raise TypeError(f'Embedding expects integer token ids, got dtype {x.dtype}.')
    vocab = weights.embedding.shape[0]
    if not isinstance(x, jax.core.Tracer):
      # Known ids (an array, or numpy constants closed over by a jit) are checked on the
      # host: jnp ops on them would be traced inside a jit.
      ids = np.asarray(x)
      if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(f'token ids must be in [0, {vocab - 1}], got ids in '
                         f'[{ids.min()}, {ids.max()}].')
    valid = (x >= 0) & (x < vocab)
    # Traced ids cannot raise: an out-of-range id (negative too) gives a NaN row, never
    # another id's row, so it shows up as a NaN loss. The Loop checks every batch's ids.
    rows = embedding_rows(weights.embedding, jnp.clip(x, 0, vocab - 1))
    return jnp.where(valid[..., None], rows, jnp.nan), state

  def init_weights_and_state(self, input_signature, rng):
    return EmbeddingWeights(self._init(rng, (self._vocab_size, self._d_feature))), ()


class Dropout(Layer):
  """Zeroes a `rate` fraction of entries in train mode (rescaling the rest); identity otherwise.

  `shared_axes` share one mask along those axes (e.g. across the sequence).
  """

  def __init__(self, rate=0.0, shared_axes=None, mode='train'):
    super().__init__(name='Dropout')
    if not 0.0 <= rate < 1.0:
      raise ValueError(f'Dropout rate must be in [0, 1), got {rate}.')
    self._rate, self._shared_axes = rate, tuple(shared_axes or ())
    self._mode = check_mode(mode, 'Dropout')

  def forward(self, x, weights, state, rng):
    if self._mode != 'train':
      return x, state
    return dropout(x, self._rate, rng, self._shared_axes, 'Dropout'), state


def dropout(x, rate, rng, shared_axes=(), who='Dropout'):
  """Train-mode dropout: zeroes a `rate` fraction of `x` (one mask along `shared_axes`) and
  rescales the rest by 1 / (1 - rate). The one implementation (Dropout, Attention use it)."""
  if rate == 0.0:
    return x
  if rng is None:
    raise ValueError(f'{who}: dropout={rate} in train mode needs an rng: pass '
                     "rng=jax.random.key(...) to pure_fn, or build with mode='eval'.")
  x = jnp.asarray(x)  # numpy bf16 / float would promote to float32 before reaching jax
  mask_shape = list(x.shape)
  for a in shared_axes:
    mask_shape[a] = 1
  keep = jax.random.bernoulli(rng, 1.0 - rate, mask_shape)
  return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def Relu():  # pylint: disable=invalid-name
  return Fn('Relu', jax.nn.relu)


def Gelu():  # pylint: disable=invalid-name
  """Exact (erf) GELU, x * Phi(x); its vjp keeps only x (see `exact_gelu`)."""
  return Fn('Gelu', exact_gelu)


@jax.custom_vjp
def exact_gelu(x):
  """x * Phi(x) (float32 math inside), with a vjp that saves only x.

  Autodiff of `jax.nn.gelu(x, approximate=False)` keeps three x-sized intermediates
  for the backward pass; in a transformer's feed-forward (4 * d_model wide) those are
  the largest activations. Here the backward recomputes Phi and phi from x.
  """
  return _gelu_fwd(x)[0]


def _gelu_fwd(x):
  x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  return (x32 * 0.5 * (1.0 + jax.lax.erf(x32 * _SQRT_HALF))).astype(x.dtype), x


def _gelu_bwd(x, g):
  x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  cdf = 0.5 * (1.0 + jax.lax.erf(x32 * _SQRT_HALF))
  pdf = jnp.exp(-0.5 * x32 * x32) * _INV_SQRT_2PI
  return ((cdf + x32 * pdf) * g.astype(x32.dtype)).astype(x.dtype),


_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
exact_gelu.defvjp(_gelu_fwd, _gelu_bwd)


def FastGelu():  # pylint: disable=invalid-name
  """tanh-approximated GELU."""
  return Fn('FastGelu', lambda x: jax.nn.gelu(x, approximate=True))


def Sigmoid():  # pylint: disable=invalid-name
  return Fn('Sigmoid', jax.nn.sigmoid)


def Tanh():  # pylint: disable=invalid-name
  return Fn('Tanh', jnp.tanh)


def Softmax(axis=-1):  # pylint: disable=invalid-name
  return Fn('Softmax', lambda x: jax.nn.softmax(x, axis=axis))


def LogSoftmax(axis=-1):  # pylint: disable=invalid-name
  return Fn('LogSoftmax', lambda x: jax.nn.log_softmax(x, axis=axis))


def Flatten(n_axes_to_keep=1):  # pylint: disable=invalid-name
  """Flattens all but the first `n_axes_to_keep` axes."""
  return Fn(f'Flatten_keep{n_axes_to_keep}',
            lambda x: jnp.reshape(x, x.shape[:n_axes_to_keep] + (-1,)))


def Mean(axis=-1, keepdims=False):  # pylint: disable=invalid-name
  return Fn('Mean', lambda x: jnp.mean(x, axis=axis, keepdims=keepdims))


def ShiftRight(n_positions=1, pad_id=0, mode='train'):  # pylint: disable=invalid-name
  """Shifts token ids right along axis 1, padding with `pad_id` (identity in predict mode).

  Turns targets into decoder inputs for teacher forcing.
  """
  check_mode(mode, 'ShiftRight')
  if mode == 'predict':
    return Fn('ShiftRight', lambda x: x)
  def shift(x):
    pad = [(0, 0)] * x.ndim
    pad[1] = (n_positions, 0)
    return jnp.pad(x, pad, constant_values=pad_id)[:, :x.shape[1]]
  return Fn('ShiftRight', shift)
