"""Causal FAVOR+'s prefix-sum product as Pallas (Triton) GPU kernels.

Computes the same `causal_product(a, b, c)[t] = sum_{j <= t} (a_t . b_j) c_j` as
`favor_causal.py` (its XLA path is the oracle), in chunks of `chunk_size` rows, with two
kernels and no cumulative sum in XLA:
  - states: one program per (pair, da tile, dc tile) walks the chunks in order, keeping its
    (tile_a, tile_c) slice of the running sum S = sum_j b_j c_j^T in registers (float32),
    and writes the sum of everything before each chunk: (n_chunks, da, dc) per pair.
  - output: one program per (pair, chunk), all in parallel:
    out_n = tril(a_n b_n^T) c_n + a_n S_n.
Matmul operands stay in the inputs' dtype (bf16 on GPU) with float32 accumulation: the
running sums are accumulated in float32 and stored per chunk in the operands' dtype (the
product a_n S_n takes them in that dtype); the output is float32.

`reverse=True` computes the anti-causal product sum_{j >= t} (a_t . b_j) c_j (the chunks
are walked from the end), so the backward pass is three more kernel products and reverses
no array:
  da = causal(g, c, b),  db = anticausal(c, g, a),  dc = anticausal(b, a, g).

Widths are zero-padded to powers of two >= 16 and the length to a multiple of the chunk
(zero rows and columns add nothing); `chunk_size` must be a power of two in 16..256.

  >>> out = causal_product_kernel(qf, kf, jnp.concatenate([v, ones], -1), chunk_size=128)

`interpret=True` runs the kernels through the Pallas interpreter (CPU tests).
"""
import functools

import jax
import jax.numpy as jnp

from plait.layers.attention.kernel_common import block_dot, pow2_at_least, triton_params

__all__ = ['causal_product_kernel', 'supported']

_CHUNKS = (16, 32, 64, 128, 256)
_TILE = 64  # Width of the (tile_a, tile_c) running-sum slices and of the output's da loop.
# Triton (num_warps, num_stages) per kernel.
COMPILER_PARAMS = {'states': (4, 2), 'output': (8, 2)}


def supported(chunk_size, dtype):
  """Whether the kernels take this chunk size (a power of two in 16..256) and dtype."""
  return chunk_size in _CHUNKS and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16,
                                                         jnp.float32)


def causal_product_kernel(a, b, c, chunk_size=128, interpret=False):
  """out[t] = sum_{j <= t} (a[t] . b[j]) c[j]: (..., L, da), (..., L, da), (..., L, dc).

  Args:
    a, b, c: float arrays with the same leading dims and length; operands are cast to
      their common dtype.
    chunk_size: rows per chunk, a power of two in 16..256 (shrunk for short sequences).
    interpret: run through the Pallas interpreter.
  Returns:
    (..., L, dc) float32.
  """
  dtype = jnp.result_type(a, b, c)
  if not supported(chunk_size, dtype) or a.shape != b.shape or (
      a.shape[:-1] != c.shape[:-1]):
    raise ValueError(f'causal_product_kernel: needs a, b (..., L, da) and c (..., L, dc) '
                     f'with equal leading dims, float dtype, chunk_size a power of two in '
                     f'{_CHUNKS}; got shapes {a.shape}, {b.shape}, {c.shape}, dtype {dtype}, '
                     f'chunk_size {chunk_size}.')
  *lead, length, da = a.shape
  dc = c.shape[-1]
  size = min(chunk_size, pow2_at_least(length))
  padded = -(-length // size) * size
  def prepare(t, width):
    t = t.astype(dtype).reshape((-1,) + t.shape[-2:])
    return jnp.pad(t, ((0, 0), (0, padded - length), (0, width - t.shape[-1])))
  wa, wc = pow2_at_least(da), pow2_at_least(dc)
  out = _product(prepare(a, wa), prepare(b, wa), prepare(c, wc), size, False, interpret)
  return out[:, :length, :dc].reshape(tuple(lead) + (length, dc))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _product(a, b, c, size, reverse, interpret):
  """(P, L, wa), (P, L, wa), (P, L, wc) padded, one dtype -> (P, L, wc) float32."""
  states = _call_states(b, c, size, reverse, interpret)
  return _call_output(a, b, c, states, size, reverse, interpret)


def _product_fwd(a, b, c, size, reverse, interpret):
  return _product(a, b, c, size, reverse, interpret), (a, b, c)


def _product_bwd(size, reverse, interpret, residuals, g):
  a, b, c = residuals
  g = g.astype(a.dtype)
  da = _product(g, c, b, size, reverse, interpret)
  db = _product(c, g, a, size, not reverse, interpret)
  dc = _product(b, a, g, size, not reverse, interpret)
  return da.astype(a.dtype), db.astype(b.dtype), dc.astype(c.dtype)


_product.defvjp(_product_fwd, _product_bwd)


def _call_states(b, c, size, reverse, interpret):
  """(P, n_chunks, wa, wc) in b's dtype: per chunk, the sum of b_j c_j^T over the chunks
  before it (after it when reverse), accumulated in float32."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  pairs, length, wa = b.shape
  wc = c.shape[-1]
  n_chunks = length // size
  ta, tc = min(_TILE, wa), min(_TILE, wc)
  body = functools.partial(_states_kernel, size=size, n_chunks=n_chunks, reverse=reverse)
  return pl.pallas_call(
      body, grid=(pairs, wa // ta, wc // tc),
      in_specs=[pl.BlockSpec((None, length, ta), lambda p, i, j: (p, 0, i)),
                pl.BlockSpec((None, length, tc), lambda p, i, j: (p, 0, j))],
      out_specs=pl.BlockSpec((None, n_chunks, ta, tc), lambda p, i, j: (p, 0, i, j)),
      out_shape=jax.ShapeDtypeStruct((pairs, n_chunks, wa, wc), b.dtype),
      compiler_params=triton_params(*COMPILER_PARAMS['states'], interpret), interpret=interpret,
      name='plait_favor_states')(b, c)


def _states_kernel(b_ref, c_ref, s_ref, *, size, n_chunks, reverse):
  """Walks the chunks with one (ta, tc) slice of the running sum; stores it before each."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel

  def step(i, total):
    n = n_chunks - 1 - i if reverse else i
    s_ref[pl.ds(n, 1), :, :] = total[None].astype(s_ref.dtype)
    rows = pl.ds(pl.multiple_of(n * size, size), size)
    return total + block_dot(b_ref[rows, :], c_ref[rows, :], trans_a=True)

  zeros = jnp.zeros(s_ref.shape[1:], jnp.float32)
  jax.lax.fori_loop(0, n_chunks, step, zeros)


def _call_output(a, b, c, states, size, reverse, interpret):
  """(P, L, wc) float32: out_n = mask(a_n b_n^T) c_n + a_n S_n for every chunk n."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  pairs, length, wa = a.shape
  wc = c.shape[-1]
  chunk = lambda width: pl.BlockSpec((None, size, width), lambda p, n: (p, n, 0))
  body = functools.partial(_output_kernel, tile=_TILE, reverse=reverse)
  return pl.pallas_call(
      body, grid=(pairs, length // size),
      in_specs=[chunk(wa), chunk(wa), chunk(wc),
                pl.BlockSpec((None, None, wa, wc), lambda p, n: (p, n, 0, 0))],
      out_specs=chunk(wc),
      out_shape=jax.ShapeDtypeStruct((pairs, length, wc), jnp.float32),
      compiler_params=triton_params(*COMPILER_PARAMS['output'], interpret), interpret=interpret,
      name='plait_favor_output')(a, b, c, states)


def _output_kernel(a_ref, b_ref, c_ref, s_ref, out_ref, *, tile, reverse):
  """One chunk: the masked within-chunk product plus the product with the earlier sums.

  da and dc are walked in static tiles so that only the (size, size) scores and one
  (size, tile) accumulator are live at a time.
  """
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  size, wa = a_ref.shape
  wc = c_ref.shape[-1]
  ta, tc = min(tile, wa), min(tile, wc)
  scores = jnp.zeros((size, size), jnp.float32)
  for i in range(0, wa, ta):
    scores += block_dot(a_ref[:, pl.ds(i, ta)], b_ref[:, pl.ds(i, ta)], trans_b=True)
  row = jax.lax.broadcasted_iota(jnp.int32, (size, size), 0)
  col = jax.lax.broadcasted_iota(jnp.int32, (size, size), 1)
  seen = row <= col if reverse else row >= col
  scores = jnp.where(seen, scores, 0.0).astype(c_ref.dtype)
  for j in range(0, wc, tc):
    acc = block_dot(scores, c_ref[:, pl.ds(j, tc)])
    for i in range(0, wa, ta):
      acc += block_dot(a_ref[:, pl.ds(i, ta)], s_ref[pl.ds(i, ta), pl.ds(j, tc)])
    out_ref[:, pl.ds(j, tc)] = acc
