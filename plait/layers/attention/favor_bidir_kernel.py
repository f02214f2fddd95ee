"""Bidirectional FAVOR+ (softmax kernel) as Pallas (Triton) GPU kernels that never store a
feature map.

The XLA path (favor.py) writes the (L, m) float32 feature maps of queries and keys to device
memory and reads them back several times in the forward and backward passes; at 64K tokens
that traffic, not the arithmetic, is most of its time (benchmarks/RESULTS.md section 17).
Here each kernel computes the features of its block of rows from q or k and the (m, d)
projection in registers and uses them at once:

  - key sums, one program per (segment of rows, batch, head): S = sum_j phi(k_j) v_j^T
    (m, dv) and z = sum_j phi(k_j) (m,), with an online maximum of the key logits (the
    features' common scale, favor_features.py) rescaling the running sums as it grows;
    XLA then combines the segments' sums at their largest maximum.
  - output, one program per (block of queries, batch, head):
    out = (phi(q) S) / (phi(q) . z), 0 where the denominator is 0 (no real key).
Backward (with the forward's output, S, z, the key maximum c and each query row's maximum
projection and denominator):
  - query gradients per query block: dq from d phi(q) = (g / den) S^T - (<g, out> / den) z.
  - query sums per segment: dS = sum_i phi(q_i)^T g_i / den_i and dz = -sum_i phi(q_i)
    <g_i, out_i> / den_i.
  - key gradients per key block: d phi(k_j) = dS v_j + dz gives dk and dv.
Features are walked in tiles of 128: the per-segment kernels (key sums, query sums) take
one feature tile per program (each tile of key sums keeps its own running maximum; XLA
brings them to the largest), the others loop over the tiles, so a program holds (64 rows,
128 features) blocks, never all m features of its rows. Rows, tile and warps are the
fastest of `benchmarks/favor_bidir_tune.py`'s sweep on an H200 (RESULTS.md section 18).

The projections use float32 operands (q and k scaled by d^(-1/4), as the XLA path); the
products with features use the values' dtype (bf16 on GPU) with float32 accumulation, as
`favor_kernel.py`. The random projection gets no gradient (it is drawn, not learned).

Shapes: q (B, H, Lq, d), k (B, H, Lk, d), v (B, H, Lk, dv), key_mask (B, Lk) bool or None,
projection (H, m, d) (one per head) or (m, d) (shared). Lengths are zero-padded to whole
blocks of rows and widths to powers of two >= 16 (padded keys are masked, padded features
and columns add nothing).

  >>> out = favor_attention_kernel(q, k, v, mask, projection)   # (B, H, Lq, dv), v.dtype

`interpret=True` runs the kernels through the Pallas interpreter (CPU tests); the XLA path
is the oracle.
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from plait.layers.attention.base import large_negative
from plait.layers.attention.kernel_common import block_dot, pow2_at_least, triton_params

__all__ = ['favor_attention_kernel', 'supported']

_ROWS = 64            # Rows (queries or keys) per block.
_FEATURES = 128       # Features per tile: kernels hold (rows, tile) feature blocks.
_PROGRAMS = 264       # Programs to aim for in the per-segment kernels (2 per H200 SM).
_NEG = large_negative(jnp.float32)
# Triton (num_warps, num_stages) per kernel.
COMPILER_PARAMS = {'key_sums': (4, 2), 'output': (4, 2), 'query_grads': (4, 2),
                   'query_sums': (4, 2), 'key_grads': (4, 2)}


def supported(dtype, nb_features, d_head=None):
  """Whether the kernels take this dtype, feature count and head width (None: any)."""
  return (jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16, jnp.float32)
          and 1 <= nb_features <= 512 and (d_head is None or 1 <= d_head <= 128))


def favor_attention_kernel(q, k, v, key_mask, projection, stabilizer=1e-6, interpret=False):
  """Bidirectional softmax-kernel FAVOR+ attention; see the module doc for shapes.

  Equals favor.py's XLA path (`FavorKind(causal=False)` with the same projection) up to the
  rounding of the feature products in v's dtype.
  """
  batch, heads, lq, d = q.shape
  lk, dv = k.shape[2], v.shape[-1]
  per_head = projection.ndim == 3
  m = projection.shape[-2]
  if (k.shape[:2] != (batch, heads) or v.shape[:3] != k.shape[:3] or k.shape[-1] != d
      or projection.shape[-1] != d or (per_head and projection.shape[0] != heads)
      or (key_mask is not None and tuple(key_mask.shape) != (batch, lk))
      or not supported(v.dtype, m, d)):
    raise ValueError(
        'favor_attention_kernel: needs q (B, H, Lq, d), k (B, H, Lk, d), v (B, H, Lk, dv), '
        'key_mask (B, Lk) or None, projection (H, m, d) or (m, d) with m <= 512, d <= 128, '
        f'float values; got q {q.shape}, k {k.shape}, v {v.shape} {v.dtype}, key_mask '
        f'{None if key_mask is None else key_mask.shape}, projection {projection.shape}.')
  dp, dvp, mp = pow2_at_least(d), pow2_at_least(dv), pow2_at_least(m)
  programs = batch * heads * (mp // _tile(mp))   # Per segment: one per feature tile.
  q_rows, k_rows = _segments(lq, programs), _segments(lk, programs)
  pad = lambda t, rows, width: _pad(t, (0, 0, rows[0] - t.shape[2], width - t.shape[3]))
  valid = jnp.ones((batch, lk), jnp.float32) if key_mask is None else (
      key_mask.astype(jnp.float32))
  valid = _pad(valid, (0, k_rows[0] - lk))
  proj = jax.lax.stop_gradient(projection).astype(jnp.float32)
  proj = _pad(proj, (0,) * (proj.ndim - 2) + (mp - m, dp - d))
  if not per_head:
    proj = proj[None]
  dims = _Dims(d=d, m=m, q_rows=q_rows, k_rows=k_rows, eps=float(stabilizer),
               interpret=interpret)
  out = _favor(pad(q, q_rows, dp), pad(k, k_rows, dp), pad(v, k_rows, dvp), valid, proj,
               dims)
  return out[:, :, :lq, :dv]


def _pad(t, amounts):
  """Zero-pads the trailing side of each axis by `amounts` (no copy when all are 0)."""
  if not any(amounts):
    return t
  return jnp.pad(t, [(0, a) for a in amounts])


def _segments(length, pairs):
  """(padded length, rows per segment) for a length split into enough segments to fill the
  GPU with `pairs` (batch, head) pairs; segments are whole blocks, preferably dividing it."""
  n_blocks = -(-length // _ROWS)
  want = max(1, min(n_blocks, -(-_PROGRAMS // pairs)))
  divisors = [s for s in range(want, min(2 * want, n_blocks) + 1) if n_blocks % s == 0]
  n_seg = divisors[0] if divisors else want
  per_seg = -(-n_blocks // n_seg)
  n_seg = -(-n_blocks // per_seg)
  return n_seg * per_seg * _ROWS, per_seg * _ROWS


class _Dims(NamedTuple):
  """Static sizes of one call: true d and m, (padded length, rows per segment) of queries
  and keys, the stabilizer, and whether to interpret."""
  d: int
  m: int
  q_rows: tuple
  k_rows: tuple
  eps: float
  interpret: bool


def _tile(mp):
  """Width of the feature tiles the kernels walk (all of mp when it is smaller)."""
  return min(_FEATURES, mp)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _favor(q, k, v, valid, proj, dims):
  return _favor_fwd(q, k, v, valid, proj, dims)[0]


def _favor_fwd(q, k, v, valid, proj, dims):
  s, z, c = _combined_key_sums(k, v, valid, proj, dims)
  s = s.astype(v.dtype)
  rows = q.shape[:3]
  out, top, den = _run('output', dims, _ROWS, 1, [q], None, proj, [s, z],
                       [_per_row(rows + v.shape[3:], v.dtype),
                        _per_row(rows, jnp.float32), _per_row(rows, jnp.float32)])
  return out, (q, k, v, valid, proj, s, z, c, out, top, den)


def _favor_bwd(dims, residuals, g):
  q, k, v, valid, proj, s, z, c, out, top, den = residuals
  g = g.astype(v.dtype)
  dq, = _run('query_grads', dims, _ROWS, 1, [q, g, out, top, den], None, proj, [s, z],
             [_per_row(q.shape, q.dtype)])
  n_seg, n_tiles = dims.q_rows[0] // dims.q_rows[1], proj.shape[1] // _tile(proj.shape[1])
  ds, dz = _run('query_sums', dims, dims.q_rows[1], n_tiles, [q, g, out, top, den], None,
                proj, [], _per_segment(n_seg, q, proj, v))
  ds, dz = ds.sum(0).astype(v.dtype), dz.sum(0)
  dk, dv = _run('key_grads', dims, _ROWS, 1, [k, v], valid, proj, [ds, dz, c],
                [_per_row(k.shape, k.dtype), _per_row(v.shape, v.dtype)])
  return dq, dk, dv, jnp.zeros_like(valid), jnp.zeros_like(proj)


_favor.defvjp(_favor_fwd, _favor_bwd)


def _combined_key_sums(k, v, valid, proj, dims):
  """S (B, H, mp, dvp), z (B, H, mp) float32 at the largest key logit c (B, H, mp)."""
  n_seg, n_tiles = dims.k_rows[0] // dims.k_rows[1], proj.shape[1] // _tile(proj.shape[1])
  s, z, c = _run('key_sums', dims, dims.k_rows[1], n_tiles, [k, v], valid, proj, [],
                 _per_segment(n_seg, k, proj, v, with_max=True))
  # Each (segment, feature tile) kept its own maximum: bring all to the largest.
  top = jnp.max(c, axis=(0, 3), keepdims=True)               # (1, B, H, 1)
  fade = jnp.exp(c - top)                                    # (n_seg, B, H, mp)
  return (jnp.sum(s * fade[..., None], axis=0), jnp.sum(z * fade, axis=0),
          jnp.broadcast_to(top[0], c.shape[1:]))


def _per_row(shape, dtype):
  return jax.ShapeDtypeStruct(tuple(shape), dtype), False


def _per_segment(n_seg, x, proj, v, with_max=False):
  """Per-segment sums: S (n_seg, B, H, mp, dvp), z (and c) (n_seg, B, H, mp), float32."""
  lead = (n_seg,) + x.shape[:2]
  mp, dvp = proj.shape[1], v.shape[-1]
  shapes = [jax.ShapeDtypeStruct(lead + (mp, dvp), jnp.float32),
            jax.ShapeDtypeStruct(lead + (mp,), jnp.float32)]
  return [(s, True) for s in shapes + shapes[1:] * with_max]


def _run(name, dims, rows, n_tiles, row_arrays, valid, proj, pair_arrays, outputs):
  """One kernel over the grid (blocks of `rows` rows x n_tiles feature tiles, B, H).

  With n_tiles > 1 grid step i takes row block i // n_tiles and feature tile i % n_tiles:
  its projection is that tile's rows and its per-segment outputs that tile's slice.
  row_arrays (B, H, L, ...) are cut into blocks of `rows` rows and `valid` (B, L) likewise;
  `proj` (1 | H, mp, dp) and pair_arrays (B, H, ...) go in whole per pair. outputs are
  (ShapeDtypeStruct, per_segment): per block of rows (B, H, L, ...), or per segment and
  pair (n_seg, B, H, mp, ...).
  """
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  batch, heads, length = row_arrays[0].shape[:3]
  tile = proj.shape[1] // n_tiles
  block = lambda i: i // n_tiles
  in_specs = [pl.BlockSpec((None, None, rows) + a.shape[3:],
                           lambda i, b, h, n=a.ndim - 3: (b, h, block(i)) + (0,) * n)
              for a in row_arrays]
  inputs = list(row_arrays)
  if valid is not None:
    in_specs.append(pl.BlockSpec((None, rows), lambda i, b, h: (b, block(i))))
    inputs.append(valid)
  shared = proj.shape[0] == 1
  in_specs.append(pl.BlockSpec((None, tile, proj.shape[2]),
                               lambda i, b, h: (0 if shared else h, i % n_tiles, 0)))
  inputs.append(proj)
  for a in pair_arrays:
    in_specs.append(pl.BlockSpec((None, None) + a.shape[2:],
                                 lambda i, b, h, n=a.ndim - 2: (b, h) + (0,) * n))
    inputs.append(a)
  out_specs = []
  for shape, per_segment in outputs:
    if per_segment:
      rest = shape.shape[4:]
      out_specs.append(pl.BlockSpec(
          (None, None, None, tile) + rest,
          lambda i, b, h, n=len(rest): (block(i), b, h, i % n_tiles) + (0,) * n))
    else:
      rest = shape.shape[3:]
      out_specs.append(pl.BlockSpec((None, None, rows) + rest,
                                    lambda i, b, h, n=len(rest): (b, h, block(i)) + (0,) * n))
  params = triton_params(*COMPILER_PARAMS[name], dims.interpret)
  body = functools.partial(_KERNELS[name], d=dims.d, m=dims.m, eps=dims.eps,
                           tile=_tile(proj.shape[1]), n_tiles=n_tiles)
  return pl.pallas_call(
      body, grid=(length // rows * n_tiles, batch, heads), in_specs=in_specs,
      out_specs=out_specs, out_shape=[shape for shape, _ in outputs], compiler_params=params,
      interpret=dims.interpret, name=f'plait_favor_bidir_{name}')(*inputs)


# ----- kernel bodies -----
# Kernels that see the whole projection walk it in feature tiles of `tile` rows, so that
# only (rows, tile) feature blocks are live; per-segment kernels get one tile (n_tiles > 1).

def _scaled(x, d):
  return x.astype(jnp.float32) * d ** -0.25


def _real_features(shape, first, m):
  """(rows, tile) bool: features first.. first + tile - 1 that are among the m real ones."""
  return jax.lax.broadcasted_iota(jnp.int32, shape, 1) + first < m


def _tiles(tile, n_tiles_whole):
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  return [(f * tile, pl.ds(f * tile, tile)) for f in range(n_tiles_whole)]


def _first_feature(tile, n_tiles):
  """Index of this program's first feature (per-segment kernels, one tile each)."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  return (pl.program_id(0) % n_tiles) * tile if n_tiles > 1 else 0


def _query_projection(q, p, first, m):
  """(rows, tile) projections of scaled queries on one feature tile, _NEG where padded."""
  proj = block_dot(q, p, trans_b=True)
  return jnp.where(_real_features(proj.shape, first, m), proj, _NEG)


def _query_features(q, p, first, m, top, eps):
  """exp(w . q' - row max) + eps on the tile's real features, 0 on padding."""
  proj = _query_projection(q, p, first, m)
  return jnp.where(proj > 0.5 * _NEG, jnp.exp(proj - top[:, None]) + eps, 0.0)


def _key_logits(k, p, first, m, valid):
  """(logits (rows, tile) with _NEG at padded keys and features, real mask)."""
  proj = block_dot(k, p, trans_b=True)
  logits = proj - 0.5 * jnp.sum(k * k, axis=1)[:, None]
  real = _real_features(proj.shape, first, m) & (valid[:, None] > 0)
  return jnp.where(real, logits, _NEG), real


def _grads_of_output(den, g, out):
  """Per query row: d num = g / den and d den = -<g, out> / den (0 where den = 0)."""
  seen = den > 0
  safe = jnp.where(seen, den, 1.0)
  g = g.astype(jnp.float32)
  dnum = jnp.where(seen[:, None], g / safe[:, None], 0.0)
  dden = jnp.where(seen, -jnp.sum(g * out.astype(jnp.float32), axis=1) / safe, 0.0)
  return dnum, dden


def _key_sums_kernel(k_ref, v_ref, valid_ref, p_ref, s_ref, z_ref, c_ref, *, d, m, eps, tile,
                     n_tiles):
  """A segment of keys on one feature tile: S = sum phi(k) v^T and z = sum phi(k) at the
  running max of the tile's logits."""
  del eps
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  p, first = p_ref[...], _first_feature(tile, n_tiles)

  def step(i, carry):
    s, z, c = carry
    rows = pl.ds(pl.multiple_of(i * _ROWS, _ROWS), _ROWS)
    v = v_ref[rows, :]
    logits, real = _key_logits(_scaled(k_ref[rows, :], d), p, first, m, valid_ref[rows])
    top = jnp.maximum(c, jnp.max(jnp.max(logits, axis=1), axis=0))
    fade = jnp.exp(c - top)
    kf = jnp.where(real, jnp.exp(logits - top), 0.0)
    s = s * fade + block_dot(kf.astype(v.dtype), v, trans_a=True)
    z = z * fade + jnp.sum(kf, axis=0)
    return s, z, top

  init = (jnp.zeros(s_ref.shape, jnp.float32), jnp.zeros(z_ref.shape, jnp.float32),
          jnp.full((), _NEG, jnp.float32))
  s, z, c = jax.lax.fori_loop(0, k_ref.shape[0] // _ROWS, step, init)
  s_ref[...] = s
  z_ref[...] = z
  c_ref[...] = jnp.full(c_ref.shape, c, jnp.float32)


def _output_kernel(q_ref, p_ref, s_ref, z_ref, out_ref, top_ref, den_ref, *, d, m, eps, tile,
                   n_tiles):
  """A block of queries: (phi(q) S) / (phi(q) . z), 0 where nothing is seen; also the rows'
  max projection and denominator for the backward."""
  del n_tiles
  q = _scaled(q_ref[...], d)
  tiles = _tiles(tile, p_ref.shape[0] // tile)
  top = jnp.full((q.shape[0],), _NEG, jnp.float32)
  for first, f in tiles:
    top = jnp.maximum(top, jnp.max(_query_projection(q, p_ref[f, :], first, m), axis=1))
  num = jnp.zeros(out_ref.shape, jnp.float32)
  den = jnp.zeros((q.shape[0],), jnp.float32)
  for first, f in tiles:
    qf = _query_features(q, p_ref[f, :], first, m, top, eps)
    s = s_ref[f, :]
    num += block_dot(qf.astype(s.dtype), s)
    den += jnp.sum(qf * z_ref[f][None, :], axis=1)
  seen = den > 0
  out_ref[...] = jnp.where(seen[:, None], num / jnp.where(seen, den, 1.0)[:, None],
                           0.0).astype(out_ref.dtype)
  top_ref[...] = top
  den_ref[...] = den


def _query_grads_kernel(q_ref, g_ref, out_ref, top_ref, den_ref, p_ref, s_ref, z_ref, dq_ref,
                        *, d, m, eps, tile, n_tiles):
  """A block of queries: dq through phi(q) (the row max takes no gradient, as in XLA)."""
  del n_tiles
  q, top = _scaled(q_ref[...], d), top_ref[...]
  dnum, dden = _grads_of_output(den_ref[...], g_ref[...], out_ref[...])
  dq = jnp.zeros(q.shape, jnp.float32)
  for first, f in _tiles(tile, p_ref.shape[0] // tile):
    p, s = p_ref[f, :], s_ref[f, :]
    qf = _query_features(q, p, first, m, top, eps)
    dqf = block_dot(dnum.astype(s.dtype), s, trans_b=True) + dden[:, None] * z_ref[f][None, :]
    dq += block_dot(jnp.where(qf > 0, dqf * (qf - eps), 0.0), p)
  dq_ref[...] = (dq * d ** -0.25).astype(dq_ref.dtype)


def _query_sums_kernel(q_ref, g_ref, out_ref, top_ref, den_ref, p_ref, ds_ref, dz_ref, *, d,
                       m, eps, tile, n_tiles):
  """A segment of queries on one feature tile: dS = sum phi(q) (g / den)^T and
  dz = sum phi(q) d den."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  p, first = p_ref[...], _first_feature(tile, n_tiles)

  def step(i, carry):
    ds, dz = carry
    rows = pl.ds(pl.multiple_of(i * _ROWS, _ROWS), _ROWS)
    g = g_ref[rows, :]
    qf = _query_features(_scaled(q_ref[rows, :], d), p, first, m, top_ref[rows], eps)
    dnum, dden = _grads_of_output(den_ref[rows], g, out_ref[rows, :])
    ds = ds + block_dot(qf.astype(g.dtype), dnum.astype(g.dtype), trans_a=True)
    return ds, dz + jnp.sum(qf * dden[:, None], axis=0)

  init = (jnp.zeros(ds_ref.shape, jnp.float32), jnp.zeros(dz_ref.shape, jnp.float32))
  ds, dz = jax.lax.fori_loop(0, q_ref.shape[0] // _ROWS, step, init)
  ds_ref[...] = ds
  dz_ref[...] = dz


def _key_grads_kernel(k_ref, v_ref, valid_ref, p_ref, ds_ref, dz_ref, c_ref, dk_ref, dv_ref,
                      *, d, m, eps, tile, n_tiles):
  """A block of keys: d phi(k) = dS v + dz gives dv = phi(k) dS and dk through phi(k)."""
  del eps, n_tiles
  k, v, valid = _scaled(k_ref[...], d), v_ref[...], valid_ref[...]
  dk = jnp.zeros(k.shape, jnp.float32)
  dv = jnp.zeros(dv_ref.shape, jnp.float32)
  dsum = jnp.zeros((k.shape[0],), jnp.float32)
  for first, f in _tiles(tile, p_ref.shape[0] // tile):
    p, ds = p_ref[f, :], ds_ref[f, :]
    logits, real = _key_logits(k, p, first, m, valid)
    kf = jnp.where(real, jnp.exp(logits - c_ref[f][None, :]), 0.0)
    dkf = block_dot(v, ds, trans_b=True) + dz_ref[f][None, :]
    dv += block_dot(kf.astype(ds.dtype), ds)
    dlogits = dkf * kf
    dk += block_dot(dlogits, p)
    dsum += jnp.sum(dlogits, axis=1)
  dk_ref[...] = ((dk - dsum[:, None] * k) * d ** -0.25).astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)


_KERNELS = {'key_sums': _key_sums_kernel, 'output': _output_kernel,
            'query_grads': _query_grads_kernel, 'query_sums': _query_sums_kernel,
            'key_grads': _key_grads_kernel}
