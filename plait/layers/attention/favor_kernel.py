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

Triton's blocks are powers of two, so every operand's columns are split into power-of-two
pieces of at least 16 (`column_pieces`: FAVOR+'s [v, 1] of 65 columns -> 64 + 1, padded to
64 + 16, not 128), zero-padded (zero rows and columns add nothing), and the length to a
whole number of segments. One states kernel takes all of a side's pieces whole when their
widths add up to at most 128 (FAVOR+'s [v, 1]: 64 + 16), keeping one running sum per pair of
pieces, so the features are read once (else it runs once per piece); one
output kernel makes all of c's pieces from scores a_n b_n^T summed over a's pieces, computed
once (so the gradients, whose operands are the pieced g and c, are one product each too,
with no XLA sum over pieces). `chunk_size` must be a power of two in 16..256.

  >>> out = causal_product_kernel(qf, kf, jnp.concatenate([v, ones], -1), chunk_size=128)
  >>> num, den = causal_product_kernel(qf, kf, v1, split=True)   # d_head 64: c's two pieces

`interpret=True` runs the kernels through the Pallas interpreter (CPU tests).
"""
import functools
import math

import jax
import jax.numpy as jnp

from plait.layers.attention.kernel_common import block_dot, pow2_at_least, triton_params

__all__ = ['causal_product_kernel', 'column_pieces', 'segment_length', 'supported']

_CHUNKS = (16, 32, 64, 128, 256)
_TILE = 64  # Width of the (tile_a, tile_c) running-sum slices and of the output's da loop.
SEGMENT_CHUNKS = 32  # Most chunks one states program walks (a power of two).
# Short sequences walk shorter segments until the states grid has this many programs (two
# waves of an H100's 132 SMs): at 4K tokens and 8 heads one segment of 32 chunks made 32.
STATES_PROGRAMS = 256
# Triton (num_warps, num_stages) per kernel.
COMPILER_PARAMS = {'states': (4, 2), 'output': (4, 2)}


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
                          segment_chunks=None, split=False, ones_column=False, vmap_size=1):
  """out[t] = sum_{j <= t} (a[t] . b[j]) c[j]: (..., L, da), (..., L, da), (..., L, dc).

    >>> num, den = causal_product_kernel(qf, kf, v, split=True, ones_column=True)  # d 64

  Args:
    a, b, c: float arrays with the same leading dims and length; operands are cast to
      their common dtype.
    chunk_size: rows per chunk, a power of two in 16..256 (shrunk for short sequences).
    interpret: run through the Pallas interpreter.
    segment_chunks: chunks per states program, a power of two (shrunk for short sequences);
      None: `segment_length`'s choice for the grid's pairs (the leading dims' size times
      vmap_size: how many calls run together under vmap, e.g. a layer's (batch, head) pairs).
    split: return the output of each of `column_pieces(dc)` apart, as the kernels write
      them, instead of their concatenation (which XLA makes as one more float32 array).
    ones_column: run on [c, 1] (a column of ones appended: FAVOR+'s denominator) without
      making it: the piece holding the ones column is built on its own (at d 64 a constant
      piece), so c's other pieces are c itself, not slices of a concatenation (which XLA
      copies). dc is then c's width + 1.
  Returns:
    (..., L, dc) float32; with split, a tuple of (..., L, width) float32, one per piece.
  """
  dtype = jnp.result_type(a, b, c)
  if not supported(chunk_size, dtype) or a.shape != b.shape or (
      a.shape[:-1] != c.shape[:-1]):
    raise ValueError(f'causal_product_kernel: needs a, b (..., L, da) and c (..., L, dc) '
                     f'with equal leading dims, float dtype, chunk_size a power of two in '
                     f'{_CHUNKS}; got shapes {a.shape}, {b.shape}, {c.shape}, dtype {dtype}, '
                     f'chunk_size {chunk_size}.')
  *lead, length, _ = a.shape
  size = min(chunk_size, pow2_at_least(length))
  n_chunks = -(-length // size)
  if segment_chunks is None:
    pairs = math.prod(lead) * vmap_size
    segment_chunks = segment_length(n_chunks, pairs * max(1, a.shape[-1] // _TILE))
  per_segment = min(segment_chunks, pow2_at_least(n_chunks, 1))
  padded = -(-n_chunks // per_segment) * per_segment * size
  def pieces(t, ones=False):
    """t's columns (and a ones column after them) as power-of-two pieces (P, padded,
    width), zero-padded."""
    t = t.astype(dtype).reshape((-1,) + t.shape[-2:])
    out = []
    for start, width in column_pieces(t.shape[-1] + ones):
      cols = t[..., start:start + width]
      if ones and start + width > t.shape[-1]:   # the piece holding the ones column
        one = jnp.ones(t.shape[:-1] + (1,), dtype)
        cols = jnp.concatenate([cols, one], axis=-1) if cols.shape[-1] else one
      out.append(jnp.pad(cols, ((0, 0), (0, padded - length),
                                (0, pow2_at_least(width) - width))))
    return tuple(out)
  dc = c.shape[-1] + ones_column
  outs = _product(pieces(a), pieces(b), pieces(c, ones_column), (size, per_segment), False,
                  interpret, jnp.float32)
  outs = tuple(o[:, :length, :width].reshape(tuple(lead) + (length, width))
               for o, (_, width) in zip(outs, column_pieces(dc)))
  if split:
    return outs
  return outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)


def segment_length(n_chunks, programs_per_segment):
  """Chunks per states program: SEGMENT_CHUNKS, halved while the grid (programs_per_segment
  = pairs x da tiles per segment) would have fewer than STATES_PROGRAMS programs.

    >>> segment_length(32, 8 * 4)    # 4K tokens, chunks of 128, 8 heads, 256 features: 4
  """
  per = min(SEGMENT_CHUNKS, pow2_at_least(n_chunks, 1))
  while per > 1 and programs_per_segment * -(-n_chunks // per) < STATES_PROGRAMS:
    per //= 2
  return per


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _product(a, b, c, layout, reverse, interpret, out_dtype):
  """Tuples of column pieces, each (P, L, power-of-two width), one dtype -> c's pieces' shapes
  in out_dtype. a and b have the same pieces: a = concat(a pieces) and so on.

  layout: (rows per chunk, chunks per segment); L is a whole number of segments. The
  gradients come out in the operands' dtype (written so by the kernel: no float32 copy).
  One output kernel makes every piece of the output: the (chunk, chunk) scores, summed
  over a's pieces, are computed once for all of c's pieces.
  """
  states, offsets = _sums(b, c, layout, reverse, interpret)
  return _call_output(a, b, c, states, offsets, layout, reverse, interpret, out_dtype)


def _sums(b, c, layout, reverse, interpret):
  """The running sums of b_j c_j^T per (b piece, c piece): [[states]] and [[offsets]].

  One states kernel per (b group, c group) of `_groups`: FAVOR+'s [v, 1] pieces (64 + 16)
  go in one group, so each running sum reads the (L, m) features once, not once per piece."""
  states = [[None] * len(c) for _ in b]
  offsets = [[None] * len(c) for _ in b]
  for b_group in _groups(b):
    for c_group in _groups(c):
      pieces_s, pieces_t = _call_states([b[i] for i in b_group], [c[j] for j in c_group],
                                        layout, reverse, interpret)
      for k, (i, j) in enumerate((i, j) for i in b_group for j in c_group):
        states[i][j] = pieces_s[k]
        # The sum of the segments before each segment (after it when reverse), float32.
        # One segment (up to segment_chunks chunks): its sums are the whole prefix already.
        totals = pieces_t[k]
        offsets[i][j] = None if totals.shape[1] == 1 else (
            jax.lax.cumsum(totals, axis=1, reverse=reverse) - totals)
  return states, offsets


def _groups(pieces):
  """Indices of pieces that one states program takes whole, together: all of them when
  there are several and their widths add up to at most 2 * _TILE (FAVOR+'s [v, 1]: 64 + 16);
  else each piece alone, walked in _TILE-wide tiles by the grid."""
  widths = [t.shape[-1] for t in pieces]
  if len(pieces) > 1 and sum(widths) <= 2 * _TILE:
    return [list(range(len(pieces)))]
  return [[i] for i in range(len(pieces))]


def _product_fwd(a, b, c, layout, reverse, interpret, out_dtype):
  return _product(a, b, c, layout, reverse, interpret, out_dtype), (a, b, c)


def _product_bwd(layout, reverse, interpret, out_dtype, residuals, g):
  del out_dtype
  a, b, c = residuals
  g = tuple(t.astype(a[0].dtype) for t in g)
  # Each gradient is one product whose pieces are the operands': da (a's pieces) sums the
  # contributions of all of c's pieces inside the kernel, with no XLA add.
  da = _product(g, c, b, layout, reverse, interpret, a[0].dtype)
  db, dc = _db_dc(a, b, c, g, layout, not reverse, interpret)
  return da, db, dc


_product.defvjp(_product_fwd, _product_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _db_dc(a, b, c, g, layout, reverse, interpret):
  """(db, dc) = (product(c, g, a), product(b, a, g)), both walked `reverse`, in b's and c's
  dtypes. Their running sums are transposes of each other (sum_t g_t a_t^T and sum_t a_t
  g_t^T), so one states pass serves both: dc's output kernel reads db's sums transposed."""
  states, offsets = _sums(g, a, layout, reverse, interpret)
  db = _call_output(c, g, a, states, offsets, layout, reverse, interpret, b[0].dtype)
  flip = lambda rows: [list(col) for col in zip(*rows)]   # [g piece][a piece] -> [a][g]
  dc = _call_output(b, a, g, flip(states), flip(offsets), layout, reverse, interpret,
                    c[0].dtype, transposed_states=True)
  return db, dc


def _db_dc_fwd(a, b, c, g, layout, reverse, interpret):
  return _db_dc(a, b, c, g, layout, reverse, interpret), (a, b, c, g)


def _db_dc_bwd(layout, reverse, interpret, residuals, cotangents):
  """Through the two products' own VJPs (second order only)."""
  a, b, c, g = residuals
  both = lambda a, b, c, g: (_product(c, g, a, layout, reverse, interpret, b[0].dtype),
                             _product(b, a, g, layout, reverse, interpret, c[0].dtype))
  return jax.vjp(both, a, b, c, g)[1](cotangents)


_db_dc.defvjp(_db_dc_fwd, _db_dc_bwd)


def _call_states(b, c, layout, reverse, interpret):
  """For lists of pieces b and c (a `_groups` group each): per chunk, the sum of b_j c_j^T
  over its segment's chunks before it (after it when reverse), (P, n_chunks, wa, wc) in b's
  dtype, and each segment's total, (P, n_segments, wa, wc) float32, for every (b piece,
  c piece) pair in row-major order. Accumulated in float32.

  A side of one piece is cut into (at most) _TILE-wide tiles over the grid; a side of several
  pieces goes whole into every program, which keeps one running sum per pair of pieces."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  size, per_segment = layout
  pairs, length, _ = b[0].shape
  n_chunks = length // size
  n_segments = n_chunks // per_segment
  rows = per_segment * size
  def side(pieces, axis):
    """Block widths, grid extent and BlockSpecs of one side (axis 1: b's tile, 2: c's)."""
    if len(pieces) == 1:
      tile = min(_TILE, pieces[0].shape[-1])
      widths, extent = [tile], pieces[0].shape[-1] // tile
    else:
      widths, extent = [t.shape[-1] for t in pieces], 1
    specs = [pl.BlockSpec((None, rows, w), lambda p, i, j, s, axis=axis: (p, s, (i, j)[axis - 1]))
             for w in widths]
    return widths, extent, specs
  wb, extent_b, specs_b = side(b, 1)
  wc, extent_c, specs_c = side(c, 2)
  pairs_of = [(x, y) for x in range(len(b)) for y in range(len(c))]
  state_specs = [pl.BlockSpec((None, per_segment, wb[x], wc[y]),
                              lambda p, i, j, s: (p, s, i, j)) for x, y in pairs_of]
  total_specs = [pl.BlockSpec((None, None, wb[x], wc[y]), lambda p, i, j, s: (p, s, i, j))
                 for x, y in pairs_of]
  out_shape = ([jax.ShapeDtypeStruct((pairs, n_chunks, b[x].shape[-1], c[y].shape[-1]),
                                     b[0].dtype) for x, y in pairs_of]
               + [jax.ShapeDtypeStruct((pairs, n_segments, b[x].shape[-1], c[y].shape[-1]),
                                       jnp.float32) for x, y in pairs_of])
  body = functools.partial(_states_kernel, n_b=len(b), n_c=len(c), size=size, reverse=reverse)
  outs = pl.pallas_call(
      body, grid=(pairs, extent_b, extent_c, n_segments), in_specs=specs_b + specs_c,
      out_specs=state_specs + total_specs, out_shape=out_shape,
      compiler_params=triton_params(*COMPILER_PARAMS['states'], interpret), interpret=interpret,
      name='plait_favor_states')(*b, *c)
  return outs[:len(pairs_of)], outs[len(pairs_of):]


def _states_kernel(*refs, n_b, n_c, size, reverse):
  """Walks one segment's chunks with one running sum per (b block, c block) pair; stores
  them before each chunk, then the segment's totals."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  b_refs, c_refs = refs[:n_b], refs[n_b:n_b + n_c]
  s_refs, total_refs = refs[n_b + n_c:n_b + n_c + n_b * n_c], refs[n_b + n_c + n_b * n_c:]
  n_chunks = s_refs[0].shape[0]

  def step(i, totals):
    n = n_chunks - 1 - i if reverse else i
    for s_ref, total in zip(s_refs, totals):
      s_ref[pl.ds(n, 1), :, :] = total[None].astype(s_ref.dtype)
    rows = pl.ds(pl.multiple_of(n * size, size), size)
    cs = [c_ref[rows, :] for c_ref in c_refs]
    new = []
    for b_ref in b_refs:
      b_rows = b_ref[rows, :]
      new.extend(block_dot(b_rows, c_rows, trans_a=True) for c_rows in cs)
    return tuple(total + add for total, add in zip(totals, new))

  zeros = tuple(jnp.zeros(s_ref.shape[1:], jnp.float32) for s_ref in s_refs)
  for total_ref, total in zip(total_refs, jax.lax.fori_loop(0, n_chunks, step, zeros)):
    total_ref[...] = total


def _call_output(a, b, c, states, offsets, layout, reverse, interpret, out_dtype,
                 transposed_states=False):
  """c's pieces' shapes, out_dtype (accumulated in float32): for every chunk n and piece j
  of c, out_jn = mask(a_n b_n^T) c_jn + sum_i a_in (S_ijn + the offset of n's segment),
  with a_n b_n^T summed over the pieces i of a and b. states[i][j] (and offsets[i][j], None
  for one segment) are `_call_states(b[i], c[j])`'s, or with transposed_states
  `_call_states(c[j], b[i])`'s (the same sums, transposed)."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  size, per_segment = layout
  pairs, length = a[0].shape[:2]
  chunk = lambda t: pl.BlockSpec((None, size, t.shape[-1]), lambda p, n: (p, n, 0))
  state = lambda t: pl.BlockSpec((None, None) + t.shape[2:], lambda p, n: (p, n, 0, 0))
  offset = lambda t: pl.BlockSpec((None, None) + t.shape[2:],
                                  lambda p, n: (p, n // per_segment, 0, 0))
  flat_states = [s for row in states for s in row]
  flat_offsets = [o for row in offsets for o in row if o is not None]
  inputs = [*a, *b, *c, *flat_states, *flat_offsets]
  in_specs = ([chunk(t) for t in (*a, *b, *c)] + [state(s) for s in flat_states]
              + [offset(o) for o in flat_offsets])
  body = functools.partial(_output_kernel, n_a=len(a), n_c=len(c), tile=_TILE, reverse=reverse,
                           with_offsets=bool(flat_offsets), transposed=transposed_states)
  return tuple(pl.pallas_call(
      body, grid=(pairs, length // size), in_specs=in_specs,
      out_specs=[chunk(t) for t in c],
      out_shape=[jax.ShapeDtypeStruct(t.shape, out_dtype) for t in c],
      compiler_params=triton_params(*COMPILER_PARAMS['output'], interpret), interpret=interpret,
      name='plait_favor_output')(*inputs))


def _tiles(width, tile):
  """Static (start, size) column tiles of a piece."""
  size = min(tile, width)
  return [(start, size) for start in range(0, width, size)]


def _output_kernel(*refs, n_a, n_c, tile, reverse, with_offsets, transposed):
  """One chunk: the masked within-chunk product plus the product with the earlier sums
  (its segment's, from the states kernel, plus the earlier segments').

  Refs: a's and b's n_a pieces, c's n_c pieces, the (a piece, c piece) states, their
  offsets when there are several segments, then the n_c outputs; `transposed`: the states
  and offsets are stored (c piece cols, a piece cols). Every piece is walked in static tiles
  so that only the (size, size) scores and one (size, tile) accumulator are live at a time.
  """
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  a_refs, b_refs, refs = refs[:n_a], refs[n_a:2 * n_a], refs[2 * n_a:]
  c_refs, refs = refs[:n_c], refs[n_c:]
  s_refs, refs = refs[:n_a * n_c], refs[n_a * n_c:]
  o_refs, out_refs = (refs[:n_a * n_c], refs[n_a * n_c:]) if with_offsets else ((), refs)
  size = a_refs[0].shape[0]
  scores = jnp.zeros((size, size), jnp.float32)
  for a_ref, b_ref in zip(a_refs, b_refs):
    for i, ta in _tiles(a_ref.shape[-1], tile):
      scores += block_dot(a_ref[:, pl.ds(i, ta)], b_ref[:, pl.ds(i, ta)], trans_b=True)
  row = jax.lax.broadcasted_iota(jnp.int32, (size, size), 0)
  col = jax.lax.broadcasted_iota(jnp.int32, (size, size), 1)
  seen = row <= col if reverse else row >= col
  dtype = c_refs[0].dtype
  scores = jnp.where(seen, scores, 0.0).astype(dtype)
  for jc, (c_ref, out_ref) in enumerate(zip(c_refs, out_refs)):
    for j, tc in _tiles(c_ref.shape[-1], tile):
      acc = block_dot(scores, c_ref[:, pl.ds(j, tc)])
      for ia, a_ref in enumerate(a_refs):
        pair = ia * n_c + jc
        for i, ta in _tiles(a_ref.shape[-1], tile):
          tile_ij = (pl.ds(j, tc), pl.ds(i, ta)) if transposed else (pl.ds(i, ta), pl.ds(j, tc))
          earlier = s_refs[pair][tile_ij]
          if with_offsets:
            earlier = (earlier.astype(jnp.float32) + o_refs[pair][tile_ij]).astype(dtype)
          acc += block_dot(a_ref[:, pl.ds(i, ta)], earlier, trans_b=transposed)
      out_ref[:, pl.ds(j, tc)] = acc.astype(out_ref.dtype)
