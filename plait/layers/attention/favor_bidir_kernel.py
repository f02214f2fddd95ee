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
Backward (with the forward's output, S, z and the maximum c):
  - query gradients per query block: dq from d phi(q) = (g / den) S^T - (<g, out> / den) z.
  - query sums per segment: dS = sum_i phi(q_i)^T g_i / den_i and dz = -sum_i phi(q_i)
    <g_i, out_i> / den_i.
  - key gradients per key block: d phi(k_j) = dS v_j + dz gives dk and dv.
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
_PROGRAMS = 264       # Programs to aim for in the per-segment kernels (2 per H200 SM).
_NEG = large_negative(jnp.float32)
# Triton (num_warps, num_stages) per kernel.
COMPILER_PARAMS = {'key_sums': (8, 2), 'output': (8, 2), 'query_grads': (8, 2),
                   'query_sums': (8, 2), 'key_grads': (8, 2)}


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
  q_rows, k_rows = _segments(lq, batch * heads), _segments(lk, batch * heads)
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


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _favor(q, k, v, valid, proj, dims):
  return _favor_fwd(q, k, v, valid, proj, dims)[0]


def _favor_fwd(q, k, v, valid, proj, dims):
  s, z, c = _combined_key_sums(k, v, valid, proj, dims)
  s = s.astype(v.dtype)
  out, = _run('output', dims, _ROWS, [q], None, proj, [s, z],
              [_per_row(q.shape[:3] + v.shape[3:], v.dtype)])
  return out, (q, k, v, valid, proj, s, z, c, out)


def _favor_bwd(dims, residuals, g):
  q, k, v, valid, proj, s, z, c, out = residuals
  g = g.astype(v.dtype)
  dq, = _run('query_grads', dims, _ROWS, [q, g, out], None, proj, [s, z],
             [_per_row(q.shape, q.dtype)])
  n_seg = dims.q_rows[0] // dims.q_rows[1]
  ds, dz = _run('query_sums', dims, dims.q_rows[1], [q, g, out], None, proj, [z],
                _per_segment(n_seg, q, proj, v))
  ds, dz = ds.sum(0).astype(v.dtype), dz.sum(0)
  dk, dv = _run('key_grads', dims, _ROWS, [k, v], valid, proj, [ds, dz, c],
                [_per_row(k.shape, k.dtype), _per_row(v.shape, v.dtype)])
  return dq, dk, dv, jnp.zeros_like(valid), jnp.zeros_like(proj)


_favor.defvjp(_favor_fwd, _favor_bwd)


def _combined_key_sums(k, v, valid, proj, dims):
  """S (B, H, mp, dvp), z (B, H, mp) float32 at the largest key logit c (B, H, mp)."""
  n_seg = dims.k_rows[0] // dims.k_rows[1]
  s, z, c = _run('key_sums', dims, dims.k_rows[1], [k, v], valid, proj, [],
                 _per_segment(n_seg, k, proj, v, with_max=True))
  top = jnp.max(c, axis=0)                       # (B, H, mp): the segments' c, all equal
  fade = jnp.exp(c - top)                        # (n_seg, B, H, mp)
  return jnp.sum(s * fade[..., None], axis=0), jnp.sum(z * fade, axis=0), top


def _per_row(shape, dtype):
  return jax.ShapeDtypeStruct(tuple(shape), dtype), False


def _per_segment(n_seg, x, proj, v, with_max=False):
  """Per-segment sums: S (n_seg, B, H, mp, dvp), z (and c) (n_seg, B, H, mp), float32."""
  lead = (n_seg,) + x.shape[:2]
  mp, dvp = proj.shape[1], v.shape[-1]
  shapes = [jax.ShapeDtypeStruct(lead + (mp, dvp), jnp.float32),
            jax.ShapeDtypeStruct(lead + (mp,), jnp.float32)]
  return [(s, True) for s in shapes + shapes[1:] * with_max]


def _run(name, dims, rows, row_arrays, valid, proj, pair_arrays, outputs):
  """One kernel over the grid (blocks of `rows` rows, B, H).

  row_arrays (B, H, L, w) are cut into blocks of `rows` rows and `valid` (B, L) likewise;
  `proj` (1 | H, mp, dp) and pair_arrays (B, H, ...) go in whole per pair. outputs are
  (ShapeDtypeStruct, per_segment): per block of _ROWS rows (B, H, L, w), or per grid
  block and pair (n, B, H, ...).
  """
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  batch, heads, length = row_arrays[0].shape[:3]
  in_specs = [pl.BlockSpec((None, None, rows, a.shape[-1]), lambda i, b, h: (b, h, i, 0))
              for a in row_arrays]
  inputs = list(row_arrays)
  if valid is not None:
    in_specs.append(pl.BlockSpec((None, rows), lambda i, b, h: (b, i)))
    inputs.append(valid)
  shared = proj.shape[0] == 1
  in_specs.append(pl.BlockSpec((None,) + proj.shape[1:],
                               lambda i, b, h: (0 if shared else h, 0, 0)))
  inputs.append(proj)
  for a in pair_arrays:
    in_specs.append(pl.BlockSpec((None, None) + a.shape[2:],
                                 lambda i, b, h, n=a.ndim - 2: (b, h) + (0,) * n))
    inputs.append(a)
  out_specs = []
  for shape, per_segment in outputs:
    if per_segment:
      rest = shape.shape[3:]
      out_specs.append(pl.BlockSpec((None, None, None) + rest,
                                    lambda i, b, h, n=len(rest): (i, b, h) + (0,) * n))
    else:
      out_specs.append(pl.BlockSpec((None, None, rows, shape.shape[-1]),
                                    lambda i, b, h: (b, h, i, 0)))
  params = triton_params(*COMPILER_PARAMS[name], dims.interpret)
  body = functools.partial(_KERNELS[name], d=dims.d, m=dims.m, eps=dims.eps)
  return pl.pallas_call(
      body, grid=(length // rows, batch, heads), in_specs=in_specs, out_specs=out_specs,
      out_shape=[shape for shape, _ in outputs], compiler_params=params,
      interpret=dims.interpret, name=f'plait_favor_bidir_{name}')(*inputs)


# ----- kernel bodies -----


def _projected(x, proj, d):
  """Rows x (T, dp) -> (x * d^(-1/4) in float32, its projections (T, mp) float32)."""
  x = x.astype(jnp.float32) * d ** -0.25
  return x, block_dot(x, proj, trans_b=True)


def _feature_mask(shape, m):
  return jax.lax.broadcasted_iota(jnp.int32, shape, 1) < m


def _query_features(q, proj, d, m, eps):
  """(T, mp) float32: exp(w . q' - row max) + eps on the m real features, 0 on padding."""
  _, p = _projected(q, proj, d)
  real = _feature_mask(p.shape, m)
  p = jnp.where(real, p, _NEG)
  top = jnp.max(p, axis=1)
  return jnp.where(real, jnp.exp(p - top[:, None]) + eps, 0.0)


def _key_logits(k, proj, d, m, valid):
  """(k', logits (T, mp) with _NEG at padded keys and features, real mask)."""
  k, p = _projected(k, proj, d)
  logits = p - 0.5 * jnp.sum(k * k, axis=1)[:, None]
  real = _feature_mask(p.shape, m) & (valid[:, None] > 0)
  return k, jnp.where(real, logits, _NEG), real


def _grads_of_output(qf, z, g, out):
  """Per query row, with den = qf . z: d num = g / den and d den = -<g, out> / den (0 where
  den = 0)."""
  den = jnp.sum(qf * z[None, :], axis=1)
  seen = den > 0
  safe = jnp.where(seen, den, 1.0)
  g = g.astype(jnp.float32)
  dnum = jnp.where(seen[:, None], g / safe[:, None], 0.0)
  dden = jnp.where(seen, -jnp.sum(g * out.astype(jnp.float32), axis=1) / safe, 0.0)
  return dnum, dden


def _key_sums_kernel(k_ref, v_ref, valid_ref, p_ref, s_ref, z_ref, c_ref, *, d, m, eps):
  """A segment of keys: S = sum phi(k) v^T and z = sum phi(k) at the segment's max logit."""
  del eps
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  proj = p_ref[...]

  def step(i, carry):
    s, z, c = carry
    rows = pl.ds(pl.multiple_of(i * _ROWS, _ROWS), _ROWS)
    v = v_ref[rows, :]
    _, logits, real = _key_logits(k_ref[rows, :], proj, d, m, valid_ref[rows])
    top = jnp.maximum(c, jnp.max(jnp.max(logits, axis=1), axis=0))
    fade = jnp.exp(c - top)
    kf = jnp.where(real, jnp.exp(logits - top), 0.0)
    s = s * fade + block_dot(kf.astype(v.dtype), v, trans_a=True)
    z = z * fade + jnp.sum(kf, axis=0)
    return s, z, top

  mp, dvp = s_ref.shape
  init = (jnp.zeros((mp, dvp), jnp.float32), jnp.zeros((mp,), jnp.float32),
          jnp.full((), _NEG, jnp.float32))
  s, z, c = jax.lax.fori_loop(0, k_ref.shape[0] // _ROWS, step, init)
  s_ref[...] = s
  z_ref[...] = z
  c_ref[...] = jnp.full((mp,), c, jnp.float32)


def _output_kernel(q_ref, p_ref, s_ref, z_ref, out_ref, *, d, m, eps):
  """A block of queries: (phi(q) S) / (phi(q) . z), 0 where nothing is seen."""
  qf = _query_features(q_ref[...], p_ref[...], d, m, eps)
  s = s_ref[...]
  num = block_dot(qf.astype(s.dtype), s)
  den = jnp.sum(qf * z_ref[...][None, :], axis=1)
  seen = den > 0
  out_ref[...] = jnp.where(seen[:, None], num / jnp.where(seen, den, 1.0)[:, None],
                           0.0).astype(out_ref.dtype)


def _query_grads_kernel(q_ref, g_ref, out_ref, p_ref, s_ref, z_ref, dq_ref, *, d, m, eps):
  """A block of queries: dq through phi(q) (the row max takes no gradient, as in XLA)."""
  proj = p_ref[...]
  qf = _query_features(q_ref[...], proj, d, m, eps)
  z, s = z_ref[...], s_ref[...]
  dnum, dden = _grads_of_output(qf, z, g_ref[...], out_ref[...])
  dqf = block_dot(dnum.astype(s.dtype), s, trans_b=True) + dden[:, None] * z[None, :]
  dproj = jnp.where(qf > 0, dqf * (qf - eps), 0.0)
  dq_ref[...] = (block_dot(dproj, proj) * d ** -0.25).astype(dq_ref.dtype)


def _query_sums_kernel(q_ref, g_ref, out_ref, p_ref, z_ref, ds_ref, dz_ref, *, d, m, eps):
  """A segment of queries: dS = sum phi(q) (g / den)^T and dz = sum phi(q) d den."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  proj, z = p_ref[...], z_ref[...]

  def step(i, carry):
    ds, dz = carry
    rows = pl.ds(pl.multiple_of(i * _ROWS, _ROWS), _ROWS)
    g = g_ref[rows, :]
    qf = _query_features(q_ref[rows, :], proj, d, m, eps)
    dnum, dden = _grads_of_output(qf, z, g, out_ref[rows, :])
    ds = ds + block_dot(qf.astype(g.dtype), dnum.astype(g.dtype), trans_a=True)
    return ds, dz + jnp.sum(qf * dden[:, None], axis=0)

  init = (jnp.zeros(ds_ref.shape, jnp.float32), jnp.zeros(dz_ref.shape, jnp.float32))
  ds, dz = jax.lax.fori_loop(0, q_ref.shape[0] // _ROWS, step, init)
  ds_ref[...] = ds
  dz_ref[...] = dz


def _key_grads_kernel(k_ref, v_ref, valid_ref, p_ref, ds_ref, dz_ref, c_ref, dk_ref, dv_ref,
                      *, d, m, eps):
  """A block of keys: d phi(k) = dS v + dz gives dv = phi(k) dS and dk through phi(k)."""
  del eps
  proj, ds = p_ref[...], ds_ref[...]
  v = v_ref[...]
  k, logits, real = _key_logits(k_ref[...], proj, d, m, valid_ref[...])
  kf = jnp.where(real, jnp.exp(logits - c_ref[...][None, :]), 0.0)
  dkf = block_dot(v, ds, trans_b=True) + dz_ref[...][None, :]
  dv_ref[...] = block_dot(kf.astype(ds.dtype), ds).astype(dv_ref.dtype)
  dlogits = dkf * kf
  dk = block_dot(dlogits, proj) - jnp.sum(dlogits, axis=1)[:, None] * k
  dk_ref[...] = (dk * d ** -0.25).astype(dk_ref.dtype)


_KERNELS = {'key_sums': _key_sums_kernel, 'output': _output_kernel,
            'query_grads': _query_grads_kernel, 'query_sums': _query_sums_kernel,
            'key_grads': _key_grads_kernel}
