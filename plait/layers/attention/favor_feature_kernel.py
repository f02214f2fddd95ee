"""FAVOR+'s softmax-kernel feature maps as Pallas (Triton) GPU kernels: (L, d) queries or
keys -> (L, m) features in the products' dtype, computed in float32 registers.

The causal kernels (`favor_kernel.py`) take bf16 features; XLA made them as (L, m) float32
arrays (projections, maxima, exp, and all that again for the gradients): about half of the
causal layer's time at 64K tokens (RESULTS.md section 38). These kernels compute the maps of
`favor_features.query_features` and `key_features` (the oracle) and write only the result:
  - queries: exp(w . q' - max_i w_i . q') + eps per row, q' = q d^(-1/4);
  - keys: exp(w . k' - |k'|^2 / 2 - c), 0 at padded keys; c is the largest logit over real
    keys: a first kernel writes each row's largest logit, XLA takes the max of those.
The kernels read q and k in their own dtype (d^(-1/4) is folded into the projection) and
write the gradients in it. Each has a custom VJP whose kernel recomputes the features from q
or k (residuals: the inputs, never an (L, m) map; the queries' also each row's max, (L,)
float32, which their forward kernel writes, so the gradient kernel projects once). The maxima
take no gradient, as in XLA; the projection gets none either (it is drawn, not learned).

Rows go in blocks of 64 and features in tiles of 128 (a program holds (64, 128) blocks); the
query kernel takes a row's max over every tile before it writes any (the tiles' projections
are made again, not held: RESULTS.md section 47 timed both ways alike).

The projections w . x (`PROJECTION_DOTS`): 'tf32' (the default) makes x float32 and takes
one float32 dot (TF32 on the GPU: w to about 2^-11). 'split' gives bf16/fp16 x the float32
projection as two pieces of x's dtype, hi + lo (hi = w rounded, lo = the rest rounded), and
w . x is two 16-bit dots of x as it is read, accumulated in float32 (w to about 2^-16; the
gradients' dots take w = hi + lo in float32). It is not the default: on an H100 it was no
faster and the layer's gradients came out further from a float32 'highest' reference
(dx 1.19e-2 against 6.3e-3 with TF32; not explained yet: RESULTS.md section 49). 'single'
takes hi alone, for timing only (logits off by up to 2^-9 of w . x).
L is zero-padded to whole blocks and d and m to powers of two >= 16 only where they are not
(padded features are masked out of the maxima and written as 0).

  >>> qf = query_features_kernel(q, w, 1e-6, jnp.bfloat16)         # (L, m) bf16
  >>> kf = key_features_kernel(k, w, mask, jnp.bfloat16)           # 0 where mask is False

`interpret=True` runs the kernels through the Pallas interpreter (CPU tests).
"""
import functools

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from plait.layers.attention.base import large_negative
from plait.layers.attention.kernel_common import block_dot, pow2_at_least, triton_params

__all__ = ['KEY_MAX_NAME', 'key_features_kernel', 'query_features_kernel']

_ROWS = 64       # Rows (queries or keys) per program.
_FEATURES = 128  # Features per tile.
_NEG = large_negative(jnp.float32)
COMPILER_PARAMS = (4, 2)  # Triton (num_warps, num_stages), every kernel.
PROJECTION_DOTS_SETTINGS = ('tf32', 'split', 'single')  # 'single': timing only; see above.
PROJECTION_DOTS = 'tf32'  # One of PROJECTION_DOTS_SETTINGS.
KEY_MAX_NAME = 'favor_key_max'  # The keys' c, for jax.checkpoint policies.


def query_features_kernel(q, projection, stabilizer, out_dtype, interpret=False):
  """(L, d) queries, (m, d) projection -> (L, m) out_dtype: exp(w . q' - row max) + eps."""
  x, proj, length, m = _prepare(q, projection)
  return _query(x, proj, (m, float(stabilizer), jnp.dtype(out_dtype), interpret))[:length, :m]


def key_features_kernel(k, projection, mask, out_dtype, interpret=False):
  """(L, d) keys, (m, d) projection, (L,) bool mask or None -> (L, m) out_dtype:
  exp(w . k' - |k'|^2 / 2 - c), c the largest logit over real keys; 0 at padded keys.

  c is named KEY_MAX_NAME for `jax.checkpoint` policies: a recompute that keeps it runs no
  key-max kernel again."""
  x, proj, length, m = _prepare(k, projection)
  valid = jnp.ones((length,), jnp.float32) if mask is None else mask.astype(jnp.float32)
  valid = jnp.pad(valid, (0, x.shape[0] - length))
  d = k.shape[1]
  row_max = _call('key_max', interpret, [jax.lax.stop_gradient(x), valid], proj, [],
                  [((x.shape[0],), jnp.float32)], m=m, d=d)  # c takes no gradient.
  top = checkpoint_name(jnp.full((proj.shape[1],), jnp.max(row_max), jnp.float32),
                        KEY_MAX_NAME)  # One c, repeated per feature.
  return _keys(x, proj, valid, top, (m, d, jnp.dtype(out_dtype), interpret))[:length, :m]


def _prepare(x, projection):
  """x zero-padded to (whole blocks, dp) where it is not (its dtype kept), and the
  projection times d^(-1/4), zero-padded to (pieces, mp, dp): see `_pieces`."""
  if x.ndim != 2 or projection.ndim != 2 or projection.shape[1] != x.shape[1]:
    raise ValueError(f'favor feature kernels: need x (L, d) and projection (m, d); got x '
                     f'{x.shape}, projection {projection.shape}.')
  (length, d), m = x.shape, projection.shape[0]
  dp, mp = pow2_at_least(d), pow2_at_least(m)
  rows = -(-length // _ROWS) * _ROWS
  proj = jax.lax.stop_gradient(projection).astype(jnp.float32) * d ** -0.25
  if (rows, dp) != (length, d):
    x = jnp.pad(x, ((0, rows - length), (0, dp - d)))
  return x, _pieces(jnp.pad(proj, ((0, mp - m), (0, dp - d))), x.dtype), length, m


def _pieces(proj, dtype):
  """The float32 (mp, dp) projection as the kernels' dot operands, (pieces, mp, dp): itself
  in float32 ('tf32', or x not 16-bit), hi and lo in x's dtype ('split'), hi alone
  ('single')."""
  if PROJECTION_DOTS not in PROJECTION_DOTS_SETTINGS:
    raise ValueError(f'favor_feature_kernel.PROJECTION_DOTS: one of '
                     f'{", ".join(PROJECTION_DOTS_SETTINGS)}; got {PROJECTION_DOTS!r}.')
  if PROJECTION_DOTS == 'tf32' or jnp.dtype(dtype) not in (jnp.bfloat16, jnp.float16):
    return proj[None]
  hi = proj.astype(dtype)
  if PROJECTION_DOTS == 'single':
    return hi[None]
  return jnp.stack([hi, (proj - hi.astype(jnp.float32)).astype(dtype)])


# ----- queries -----

@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _query(x, proj, static):
  return _query_fwd(x, proj, static)[0]


def _query_fwd(x, proj, static):
  """The features, and each row's max logit (float32, (rows,)) for the gradient kernel,
  which so makes each tile's projection once instead of twice."""
  m, eps, out_dtype, interpret = static
  feats, top = _call('query', interpret, [x], proj, [],
                     [((x.shape[0], proj.shape[1]), out_dtype), ((x.shape[0],), jnp.float32)],
                     m=m, eps=eps)
  return feats, (x, proj, top)


def _query_bwd(static, residuals, g):
  m, eps, _, interpret = static
  x, proj, top = residuals
  dx = _call('query_grad', interpret, [x, g, top], proj, [], [(x.shape, x.dtype)], m=m,
             eps=eps)
  return dx, jnp.zeros_like(proj)


_query.defvjp(_query_fwd, _query_bwd)


# ----- keys -----

@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _keys(x, proj, valid, top, static):
  return _keys_fwd(x, proj, valid, top, static)[0]


def _keys_fwd(x, proj, valid, top, static):
  m, d, out_dtype, interpret = static
  feats = _call('key', interpret, [x, valid], proj, [top],
                [((x.shape[0], proj.shape[1]), out_dtype)], m=m, d=d)
  return feats, (x, proj, valid, top)


def _keys_bwd(static, residuals, g):
  m, d, _, interpret = static
  x, proj, valid, top = residuals
  dx = _call('key_grad', interpret, [x, valid, g], proj, [top], [(x.shape, x.dtype)], m=m,
             d=d)
  return dx, jnp.zeros_like(proj), jnp.zeros_like(valid), jnp.zeros_like(top)


_keys.defvjp(_keys_fwd, _keys_bwd)


def _call(name, interpret, row_arrays, proj, whole_arrays, outs, **static):
  """One kernel over blocks of _ROWS rows: row_arrays are cut into blocks, proj and
  whole_arrays go in whole; outs: [(shape, dtype)] of per-row outputs. Returns the output,
  or a tuple of them when there are several."""
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  rows = lambda a: pl.BlockSpec((_ROWS,) + a.shape[1:], lambda i, n=a.ndim - 1: (i,) + (0,) * n)
  whole = lambda a: pl.BlockSpec(a.shape, lambda i, n=a.ndim: (0,) * n)
  outs = [jax.ShapeDtypeStruct(tuple(shape), dtype) for shape, dtype in outs]
  body = functools.partial(_KERNELS[name], tile=min(_FEATURES, proj.shape[1]), **static)
  result = pl.pallas_call(
      body, grid=(outs[0].shape[0] // _ROWS,),
      in_specs=[rows(a) for a in row_arrays] + [whole(proj)] + [whole(a) for a in whole_arrays],
      out_specs=[rows(o) for o in outs], out_shape=outs,
      compiler_params=triton_params(*COMPILER_PARAMS, interpret), interpret=interpret,
      name=f'plait_favor_{name}_features')(*row_arrays, proj, *whole_arrays)
  return result[0] if len(outs) == 1 else tuple(result)


# ----- kernel bodies: (rows, tile) blocks of projections, one feature tile at a time -----
# p_ref: the projection's pieces (pieces, mp, dp) (`_pieces`); x: the block as the dots take
# it (`_operand`).

def _tiles(p_ref, tile):
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  return [(first, pl.ds(first, tile)) for first in range(0, p_ref.shape[1], tile)]


def _operand(x_ref, p_ref):
  """The block of x for the projection's dots: in the pieces' dtype (x's own for 16-bit x)."""
  return x_ref[...].astype(p_ref.dtype)


def _project(x, p_ref, f):
  """(rows, tile) w . x for one feature tile: the pieces' dots, accumulated in float32."""
  out = block_dot(x, p_ref[0, f, :], trans_b=True)
  for piece in range(1, p_ref.shape[0]):
    out += block_dot(x, p_ref[piece, f, :], trans_b=True)
  return out


def _weights(p_ref, f):
  """(tile, dp) w in float32 for the gradients' dots: the sum of the pieces."""
  w = p_ref[0, f, :].astype(jnp.float32)
  for piece in range(1, p_ref.shape[0]):
    w += p_ref[piece, f, :].astype(jnp.float32)
  return w


def _query_projection(x, p_ref, first, f, m):
  """(rows, tile) w . q' for one tile, _NEG on padded features."""
  proj = _project(x, p_ref, f)
  return jnp.where(_real(proj.shape, first, m), proj, _NEG)


def _real(shape, first, m):
  return jax.lax.broadcasted_iota(jnp.int32, shape, 1) + first < m


def _query_top(x, p_ref, tile, m):
  """(rows,) max over features of w . q' (a first pass over the tiles)."""
  top = jnp.full((x.shape[0],), _NEG, jnp.float32)
  for first, f in _tiles(p_ref, tile):
    top = jnp.maximum(top, jnp.max(_query_projection(x, p_ref, first, f, m), axis=1))
  return top


def _query_kernel(x_ref, p_ref, out_ref, top_ref, *, tile, m, eps):
  x = _operand(x_ref, p_ref)
  top = _query_top(x, p_ref, tile, m)
  top_ref[...] = top
  for first, f in _tiles(p_ref, tile):
    proj = _query_projection(x, p_ref, first, f, m)
    feats = jnp.where(proj > 0.5 * _NEG, jnp.exp(proj - top[:, None]) + eps, 0.0)
    out_ref[:, f] = feats.astype(out_ref.dtype)


def _query_grad_kernel(x_ref, g_ref, top_ref, p_ref, dx_ref, *, tile, m, eps):
  """dx = sum over features of g * exp(proj - top) * w (the row max, from the forward
  kernel, takes no gradient)."""
  del eps
  x = _operand(x_ref, p_ref)
  top = top_ref[...]
  dx = jnp.zeros(dx_ref.shape, jnp.float32)
  for first, f in _tiles(p_ref, tile):
    proj = _query_projection(x, p_ref, first, f, m)
    dproj = g_ref[:, f].astype(jnp.float32) * jnp.exp(proj - top[:, None])
    dx += block_dot(dproj, _weights(p_ref, f))
  dx_ref[...] = dx.astype(dx_ref.dtype)


def _key_rows(x_ref, valid_ref, p_ref, d):
  """The block's keys for the dots and in float32, |k'|^2 / 2 per row (k' = k d^(-1/4), d
  the true width) and the (rows,) validity."""
  x = x_ref[...].astype(jnp.float32)
  return (_operand(x_ref, p_ref), x, (0.5 * d ** -0.5) * jnp.sum(x * x, axis=1),
          valid_ref[...])


def _key_logits(x, half_norm, valid, p_ref, f, first, m):
  """(rows, tile) w . k' - |k'|^2 / 2, _NEG at padded keys and features."""
  logits = _project(x, p_ref, f) - half_norm[:, None]
  real = _real(logits.shape, first, m) & (valid[:, None] > 0)
  return jnp.where(real, logits, _NEG)


def _key_features(x, half_norm, valid, p_ref, top_ref, f, first, m):
  """(rows, tile) exp(logit - c), 0 at padded keys and features; top_ref[f]: c per feature."""
  logits = _key_logits(x, half_norm, valid, p_ref, f, first, m)
  return jnp.where(logits > 0.5 * _NEG, jnp.exp(logits - top_ref[f][None, :]), 0.0)


def _key_max_kernel(x_ref, valid_ref, p_ref, out_ref, *, tile, m, d):
  x, _, half_norm, valid = _key_rows(x_ref, valid_ref, p_ref, d)
  top = jnp.full((x.shape[0],), _NEG, jnp.float32)
  for first, f in _tiles(p_ref, tile):
    logits = _key_logits(x, half_norm, valid, p_ref, f, first, m)
    top = jnp.maximum(top, jnp.max(logits, axis=1))
  out_ref[...] = top


def _key_kernel(x_ref, valid_ref, p_ref, top_ref, out_ref, *, tile, m, d):
  x, _, half_norm, valid = _key_rows(x_ref, valid_ref, p_ref, d)
  for first, f in _tiles(p_ref, tile):
    feats = _key_features(x, half_norm, valid, p_ref, top_ref, f, first, m)
    out_ref[:, f] = feats.astype(out_ref.dtype)


def _key_grad_kernel(x_ref, valid_ref, g_ref, p_ref, top_ref, dx_ref, *, tile, m, d):
  """With kf the features and dl = g * kf: dx = dl w' - (sum_features dl) k d^(-1/2), w' the
  projection times d^(-1/4)."""
  x, x32, half_norm, valid = _key_rows(x_ref, valid_ref, p_ref, d)
  dx = jnp.zeros(dx_ref.shape, jnp.float32)
  dsum = jnp.zeros((x.shape[0],), jnp.float32)
  for first, f in _tiles(p_ref, tile):
    feats = _key_features(x, half_norm, valid, p_ref, top_ref, f, first, m)
    dlogits = g_ref[:, f].astype(jnp.float32) * feats
    dx += block_dot(dlogits, _weights(p_ref, f))
    dsum += jnp.sum(dlogits, axis=1)
  dx_ref[...] = (dx - (d ** -0.5) * dsum[:, None] * x32).astype(dx_ref.dtype)


_KERNELS = {'query': _query_kernel, 'query_grad': _query_grad_kernel,
            'key_max': _key_max_kernel, 'key': _key_kernel, 'key_grad': _key_grad_kernel}
