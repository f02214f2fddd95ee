"""Positional encodings: sinusoidal (or octave), learned, and axial (factorized) for long inputs.

Inputs are (batch, length, d_feature). In predict mode the state holds the next
position, so a prompt of any length followed by single tokens gets the same
encodings as the whole sequence at once. Positions past max_len are an error in every
mode: eager calls raise, and under jit their encodings are NaN (never a reused row).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from plait.layers import initializers as init
from plait.layers.base import Layer
from plait.layers.core import Dropout, check_mode


def _sin_cos(angles, d_feature):
  """(max_len, d_feature) float32: sin of `angles` (max_len, ceil(d/2)) in the even columns,
  cos in the odd ones."""
  table = np.zeros((angles.shape[0], d_feature), np.float32)
  table[:, 0::2] = np.sin(angles)
  table[:, 1::2] = np.cos(angles)[:, :d_feature // 2]
  return table


def sinusoids(max_len, d_feature):
  """(max_len, d_feature) table of Vaswani et al. sin/cos encodings."""
  pos = np.arange(max_len)[:, None]
  div = np.exp(np.arange(0, d_feature, 2) * -(np.log(10000.0) / d_feature))
  return _sin_cos(pos * div, d_feature)


def octave_sinusoids(max_len, d_feature):
  """(max_len, d_feature) sin/cos encodings whose periods are 2, 4, 8, ... positions.

  Octave k (period 2**k, k = 1..m, m = ceil(log2(max_len)) + 1 so the longest period is at
  least twice max_len) gives a sin column and a cos column; columns past 2m repeat the
  octaves from the shortest. Every power-of-two period is there, so a position's residue
  modulo 32 (its column in a 32-wide raster image) is a few columns away; Vaswani et al.'s
  geometric periods (`sinusoids`) have no period of 32 (at d_feature 32 the closest is 35.3),
  and on images of Pathfinder's two dots alone the LRA Transformer reads their distance with
  these and not with those (benchmarks/RESULTS.md section 24).

    >>> octave_sinusoids(4, 4)[:, 1]   # cos with period 2: [1, -1, 1, -1]
  """
  m = int(np.ceil(np.log2(max(max_len, 2)))) + 1
  pos = np.arange(max_len)[:, None]
  periods = 2.0 ** (1 + np.arange((d_feature + 1) // 2) % m)
  return _sin_cos(2 * np.pi * pos / periods, d_feature)


_TABLES = {'sinusoidal': sinusoids, 'octave': octave_sinusoids}


class _PositionalBase(Layer):
  """Adds `self._table(weights)` rows [pos, pos + length) to the input."""

  def __init__(self, max_len, dropout, mode, name):
    super().__init__(name=name)
    self._max_len = max_len
    self._mode = check_mode(mode, name)
    self._dropout = Dropout(dropout, mode=mode)

  def _table(self, weights, d_feature):
    raise NotImplementedError

  def forward(self, x, weights, state, rng):
    if x.ndim != 3:
      raise ValueError(f'{self.name} expects (batch, length, d_feature), got shape {x.shape}.')
    length, d = x.shape[1], x.shape[2]
    table = self._table(weights, d)
    if length > self._max_len:
      raise ValueError(f'{self.name}: input length {length} > max_len {self._max_len}.')
    if self._mode == 'predict':
      rows, new_state = self._rows_from(table, state, length), state + length
    else:
      rows, new_state = table[:length], state
    y = x + rows[None].astype(x.dtype)
    return self._dropout.forward(y, (), (), rng)[0], new_state

  def _rows_from(self, table, pos, length):
    """Rows [pos, pos + length) of the table; positions past max_len are never clamped.

    Eagerly they raise; under jit (no Python error possible) their rows are NaN, so the
    output shows it instead of silently repeating the last row.
    """
    if not isinstance(pos, jax.core.Tracer) and int(pos) + length > self._max_len:
      raise ValueError(f'{self.name}: predict mode reached positions {int(pos)}..'
                       f'{int(pos) + length - 1} but max_len is {self._max_len}; build the '
                       'model with a larger max_len or decode fewer tokens.')
    rows = jax.lax.dynamic_slice_in_dim(table, jnp.minimum(pos, self._max_len - length),
                                        length, axis=0)
    inside = pos + jnp.arange(length) < self._max_len
    return jnp.where(inside[:, None], rows, jnp.nan)

  def _position_state(self):
    return jnp.zeros((), jnp.int32) if self._mode == 'predict' else ()


class PositionalEncodingWeights(NamedTuple):
  """A learned PositionalEncoding's weights: the (max_len, d_feature) table."""
  table: jax.Array


class PositionalEncoding(_PositionalBase):
  """Sinusoidal (kind='sinusoidal'), octave (kind='octave': sinusoids of periods 2, 4, 8, ...,
  see `octave_sinusoids`; both no weights) or learned (kind='learned') encodings.

  Learned tables start as N(0, 1), the scale of `Embedding`'s token vectors (and of the
  axial tables), so position is as visible as content from the first step. That matters
  for hashing attention: with N(0, 0.02) tables the token part dominates every query, LSH
  buckets by content alone, and a model that must attend by position (the duplication
  task) sits at chance (benchmarks/RESULTS.md section 5). `initializer` overrides it.

  Weights: `PositionalEncodingWeights(table)` if learned, else ().

    >>> pe = PositionalEncoding(max_len=1024, kind='learned')
    >>> pe.init(ShapeDtype((8, 1024, 256)))[0].table.shape   # std 1
    (1024, 256)
  """

  def __init__(self, max_len=2048, kind='sinusoidal', dropout=0.0, mode='train',
               initializer=init.normal(1.0)):
    if kind not in ('learned', *_TABLES):
      raise ValueError("PositionalEncoding kind must be 'sinusoidal', 'octave' or 'learned', "
                       f'got {kind!r}.')
    super().__init__(max_len, dropout, mode, name=f'PositionalEncoding_{kind}')
    self._kind, self._init = kind, initializer

  def _table(self, weights, d_feature):
    if self._kind == 'learned':
      return weights.table
    return jnp.asarray(_TABLES[self._kind](self._max_len, d_feature))

  def init_weights_and_state(self, input_signature, rng):
    d = input_signature.shape[-1]
    if self._kind != 'learned':
      return (), self._position_state()
    return PositionalEncodingWeights(self._init(rng, (self._max_len, d))), self._position_state()


class AxialPositionalWeights(NamedTuple):
  """AxialPositionalEncoding's weights: one (shape[i], d_embs[i]) table per axis i."""
  tables: tuple


class AxialPositionalEncoding(_PositionalBase):
  """Learned encodings factorized over axes: position p = multi-index in `shape`.

  Axis i has a (shape[i], d_embs[i]) table; the encoding of p is the concatenation
  of each axis' row, so sum(d_embs) must equal d_feature. Parameters grow with
  sum(shape) instead of prod(shape): (64, 64, 3) covers 12288 positions.

  Weights: `AxialPositionalWeights(tables)`, a tuple of one table per axis.

    >>> ape = AxialPositionalEncoding(shape=(64, 128), d_embs=(16, 48))
    >>> [t.shape for t in ape.init(ShapeDtype((1, 8192, 64)))[0].tables]
    [(64, 16), (128, 48)]
  """

  def __init__(self, shape=(64, 64, 3), d_embs=(384, 384, 256), dropout=0.0, mode='train'):
    if len(shape) != len(d_embs):
      raise ValueError(f'AxialPositionalEncoding: shape {shape} and d_embs {d_embs} '
                       'need the same number of axes.')
    super().__init__(int(np.prod(shape)), dropout, mode,
                     name=f'AxialPositionalEncoding_{"x".join(map(str, shape))}')
    self._shape, self._d_embs = tuple(shape), tuple(d_embs)

  def _table(self, weights, d_feature):
    if d_feature != sum(self._d_embs):
      raise ValueError(f'{self.name}: sum(d_embs)={sum(self._d_embs)} != d_feature={d_feature}.')
    parts = []
    for i, w in enumerate(weights.tables):
      view = [1] * len(self._shape) + [w.shape[-1]]
      view[i] = self._shape[i]
      parts.append(jnp.broadcast_to(w.reshape(view), self._shape + (w.shape[-1],)))
    return jnp.concatenate(parts, axis=-1).reshape(self._max_len, d_feature)

  def init_weights_and_state(self, input_signature, rng):
    rngs = jax.random.split(rng, len(self._shape))
    tables = tuple(init.normal(1.0)(r, (n, d)) for r, n, d in zip(rngs, self._shape, self._d_embs))
    return AxialPositionalWeights(tables), self._position_state()
