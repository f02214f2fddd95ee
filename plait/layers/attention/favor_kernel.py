"""Causal FAVOR+'s prefix-sum product as Pallas (Triton) GPU kernels.

Computes the same `causal_product(a, b, c)[t] = sum_{j <= t} (a_t . b_j) c_j` as
`favor_causal.py` (its XLA path is the oracle), in chunks of `chunk_size` rows, with two
kernels and a tiny cumulative sum in XLA:
  - states: one program per (pair, da tile, dc tile, segment of `segment_chunks` chunks)
    walks its segment's chunks in order, keeping its (tile_a, tile_c) slice of the running
    sum S = sum_j b_j c_j^T in registers (float32); it writes the sum of the segment's
    chunks before each chunk, and the segment's total. Segments run in parallel: the
    sequential depth is `segment_chunks` steps, not L / chunk_size.
  - XLA: an exclusive cumulative sum of the segment totals, (pairs, segments, da, dc) float32.
  - output: one program per (pair, chunk), all in parallel:
    out_n = tril(a_n b_n^T) c_n + a_n (S_n + offset of n's segment).
Matmul operands stay in the inputs' dtype (bf16 on GPU) with float32 accumulation: the
running sums are accumulated in float32 and stored per chunk in the operands' dtype (the
product a_n S_n takes them in that dtype); the output is float32, the gradients (three
more products) are written in the operands' dtype.

`reverse=True` computes the anti-causal product sum_{j >= t} (a_t . b_j) c_j (the chunks
are walked from the end), so the backward pass is three more kernel products and reverses
no array:
  da = causal(g, c, b),  db = anticausal(c, g, a),  dc = anticausal(b, a, g).

The product is linear in c, so c's columns are split into power-of-two pieces of at least
16 (`column_pieces`: FAVOR+'s [v, 1] of 65 columns -> 64 + 1, padded to 64 + 16, not 128),
each its own product. da is zero-padded to a power of two >= 16 and the length to a whole
number of segments (zero rows and columns add nothing); `chunk_size` must be a power of two
in 16..256.

  >>> out = causal_product_kernel(qf, kf, jnp.concatenate([v, ones], -1), chunk_size=128)

`interpret=True` runs the kernels through the Pallas interpreter (CPU tests).
"""
import functools

import jax
import jax.numpy as jnp

from plait.layers.attention.kernel_common import block_dot, pow2_at_least, triton_params

__all__ = ['causal_product_kernel', 'column_pieces', 'supported']

_CHUNKS = (16, 32, 64, 128, 256)
_TILE = 64  # Width of the (tile_a, tile_c) running-sum slices and of the output's da loop.
SEGMENT_CHUNKS = 32  # Chunks one states program walks (a power of two).
# Triton (num_warps, num_stages) per kernel.
COMPILER_PARAMS = {'states': (4, 2), 'output': (8, 2)}


def supported(chunk_size, dtype):
  """Whether the kernels take this chunk size (a power of two in 16..256) and dtype."""
  return chunk_size in _CHUNKS and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16,
                                                         jnp.float32)


def column_pieces(width, floor=16):
  """(start, width) pieces of `width` columns whose power-of-two paddings (>= floor) add
  up to less than the whole width's: 65 -> [(0, 64), (64, 1)] (64 + 16 columns, not 128),
  64 -> [(0, 64)], 17 -> [(0, 17)] (32 either way)."""
  pieces, start = [], 0
  while pow2_at_least(width - start, floor) > -(-(width - start) // floor) * floor:
    piece = 1 << ((width - start).bit_length() - 1)
    pieces.append((start, piece))
    start += piece
  return pieces + [(start, width - start)]


def causal_product_kernel(a, b, c, chunk_size=128, interpret=False,
                          segment_chunks=SEGMENT_CHUNKS):
  """out[t] = sum_{j <= t} (a[t] . b[j]) c[j]: (..., L, da), (..., L, da), (..., L, dc).

  Args:
    a, b, c: float arrays with the same leading dims and length; operands are cast to
      their common dtype.
    chunk_size: rows per chunk, a power of two in 16..256 (shrunk for short sequences).
    interpret: run through the Pallas interpreter.
    segment_chunks: chunks per states program, a power of two (shrunk for short sequences).
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
  size = min(chunk_size, pow2_at_least(length))
  n_chunks = -(-length // size)
  per_segment = min(segment_chunks, pow2_at_least(n_chunks, 1))
  padded = -(-n_chunks // per_segment) * per_segment * size
  def prepare(t, width):
    t = t.astype(dtype).reshape((-1,) + t.shape[-2:])
    return jnp.pad(t, ((0, 0), (0, padded - length), (0, width - t.shape[-1])))
  wa = pow2_at_least(da)
  a, b = prepare(a, wa), prepare(b, wa)
  layout = (size, per_segment)
  outs = [_product(a, b, prepare(c[..., start:start + width], pow2_at_least(width)), layout,
                   False, interpret, jnp.float32)[:, :length, :width]
          for start, width in column_pieces(c.shape[-1])]
  out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)
  return out.reshape(tuple(lead) + (length, c.shape[-1]))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _product(a, b, c, layout, reverse, interpret, out_dtype):
  """(P, L, wa), (P, L, wa), (P, L, wc) padded, one dtype -> (P, L, wc) out_dtype.

  layout: (rows per chunk, chunks per segment); L is a whole number of segments. The
  gradients come out in the operands' dtype (written so by the kernel: no float32 copy).
  """
  states, totals = _call_states(b, c, layout, reverse, interpret)
  # The sum of the segments before each segment (after it when reverse), float32.
  # One segment (up to segment_chunks chunks): its sums are the whole prefix already.
  offsets = None if totals.shape[1] == 1 else (
      jax.lax.cumsum(totals, axis=1, reverse=reverse) - totals)
  return _call_output(a, b, c, states, offsets, layout, reverse, interpret, out_dtype)


def _product_fwd(a, b, c, layout, reverse, interpret, out_dtype):
  return _product(a, b, c, layout, reverse, interpret, out_dtype), (a, b, c)


def _product_bwd(layout, reverse, interpret, out_dtype, residuals, g):
  del out_dtype
  a, b, c = residuals
  g = g.astype(a.dtype)
  da = _product(g, c, b, layout, reverse, interpret, a.dtype)
  db = _product(c, g, a, layout, not reverse, interpret, b.dtype)
  dc = _product(b, a, g, layout, not reverse, interpret, c.dtype)
  return da, db, dc


_product.defvjp(_product_fwd, _product_bwd)


def _call_states(b, c, layout, reverse, interpret):
  """Per chunk, the sum of b_j c_j^T over its segment's chunks before it (after it when
  reverse): (P, n_chunks, wa, wc) in b's dtype; and each segment's total, (P, n_segments,
  wa, wc) float32. Accumulated in float32."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  size, per_segment = layout
  pairs, length, wa = b.shape
  wc = c.shape[-1]
  n_chunks = length // size
  n_segments = n_chunks // per_segment
  ta, tc = min(_TILE, wa), min(_TILE, wc)
  rows = per_segment * size
  body = functools.partial(_states_kernel, size=size, reverse=reverse)
  return pl.pallas_call(
      body, grid=(pairs, wa // ta, wc // tc, n_segments),
      in_specs=[pl.BlockSpec((None, rows, ta), lambda p, i, j, s: (p, s, i)),
                pl.BlockSpec((None, rows, tc), lambda p, i, j, s: (p, s, j))],
      out_specs=[pl.BlockSpec((None, per_segment, ta, tc), lambda p, i, j, s: (p, s, i, j)),
                 pl.BlockSpec((None, None, ta, tc), lambda p, i, j, s: (p, s, i, j))],
      out_shape=[jax.ShapeDtypeStruct((pairs, n_chunks, wa, wc), b.dtype),
                 jax.ShapeDtypeStruct((pairs, n_segments, wa, wc), jnp.float32)],
      compiler_params=triton_params(*COMPILER_PARAMS['states'], interpret), interpret=interpret,
      name='plait_favor_states')(b, c)


def _states_kernel(b_ref, c_ref, s_ref, total_ref, *, size, reverse):
  """Walks one segment's chunks with one (ta, tc) slice of the running sum; stores it
  before each chunk, then the segment's total."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  n_chunks = s_ref.shape[0]

  def step(i, total):
    n = n_chunks - 1 - i if reverse else i
    s_ref[pl.ds(n, 1), :, :] = total[None].astype(s_ref.dtype)
    rows = pl.ds(pl.multiple_of(n * size, size), size)
    return total + block_dot(b_ref[rows, :], c_ref[rows, :], trans_a=True)

  zeros = jnp.zeros(s_ref.shape[1:], jnp.float32)
  total_ref[...] = jax.lax.fori_loop(0, n_chunks, step, zeros)


def _call_output(a, b, c, states, offsets, layout, reverse, interpret, out_dtype):
  """(P, L, wc) out_dtype (accumulated in float32) for every chunk n:
  out_n = mask(a_n b_n^T) c_n + a_n (S_n + the offset of n's segment); offsets None: S_n."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  size, per_segment = layout
  pairs, length, wa = a.shape
  wc = c.shape[-1]
  chunk = lambda width: pl.BlockSpec((None, size, width), lambda p, n: (p, n, 0))
  body = functools.partial(_output_kernel, tile=_TILE, reverse=reverse)
  in_specs = [chunk(wa), chunk(wa), chunk(wc),
              pl.BlockSpec((None, None, wa, wc), lambda p, n: (p, n, 0, 0))]
  inputs = [a, b, c, states]
  if offsets is not None:
    in_specs.append(
        pl.BlockSpec((None, None, wa, wc), lambda p, n: (p, n // per_segment, 0, 0)))
    inputs.append(offsets)
  return pl.pallas_call(
      body, grid=(pairs, length // size), in_specs=in_specs, out_specs=chunk(wc),
      out_shape=jax.ShapeDtypeStruct((pairs, length, wc), out_dtype),
      compiler_params=triton_params(*COMPILER_PARAMS['output'], interpret), interpret=interpret,
      name='plait_favor_output')(*inputs)


def _output_kernel(a_ref, b_ref, c_ref, s_ref, *refs, tile, reverse):
  """One chunk: the masked within-chunk product plus the product with the earlier sums
  (its segment's, from the states kernel, plus the earlier segments').

  da and dc are walked in static tiles so that only the (size, size) scores and one
  (size, tile) accumulator are live at a time.
  """
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  *offset_ref, out_ref = refs  # The offsets' ref when there are several segments.
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
      tile_ij = (pl.ds(i, ta), pl.ds(j, tc))
      earlier = s_ref[tile_ij]
      if offset_ref:
        earlier = (earlier.astype(jnp.float32) + offset_ref[0][tile_ij]).astype(c_ref.dtype)
      acc += block_dot(a_ref[:, pl.ds(i, ta)], earlier)
    out_ref[:, pl.ds(j, tc)] = acc.astype(out_ref.dtype)
