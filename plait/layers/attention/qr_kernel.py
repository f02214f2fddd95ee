"""The orthogonal factor of many small square matrices' QR as one Pallas (Triton) GPU kernel.

FAVOR+ redraws its orthogonal random features every training step: the Q of a Gaussian
(d, d) matrix's QR per block of d features. cuSOLVER's batched QR took 1.85 ms per call on an
H200 whatever the batch (16 to 128 matrices of 64 x 64: latency, not work), 14 % of an LRA
Performer step with four layers (RESULTS.md section 17). Here one program per matrix keeps
the matrix and its Q in registers and applies d Householder reflections in a loop:

  for j in 0..d-1:  x = R[j:, j];  v = x + sign(x_0) |x| e_0 (normalized);
                    R <- R - 2 v (v^T R);  Q <- Q - 2 (Q v) v^T
so R becomes upper triangular and Q = H_0 ... H_{d-1}. The result is Q times the signs of R's
diagonal: the unique orthogonal factor whose R has a positive diagonal, what
`jnp.linalg.qr` gives after the same sign fix (favor_features.py), up to rounding.

Shapes: (n, d, d) float32 -> (n, d, d) float32, d <= 128 (zero-padded to a power of two: the
padding is an identity block, left as it is).

  >>> q = orthogonal_factor(jax.random.normal(key, (16, 64, 64)))   # q[i].T @ q[i] = I

`interpret=True` runs the kernel through the Pallas interpreter (CPU tests); the XLA path
(`jnp.linalg.qr`) is the oracle.
"""
import functools

import jax
import jax.numpy as jnp

from plait.layers.attention.kernel_common import pow2_at_least, triton_params

__all__ = ['orthogonal_factor', 'supported']

COMPILER_PARAMS = (4, 1)  # Triton (num_warps, num_stages).


def supported(d, dtype=jnp.float32):
  """Whether the kernel takes (d, d) matrices of this dtype."""
  return 1 <= d <= 128 and jnp.dtype(dtype) == jnp.float32


def orthogonal_factor(blocks, interpret=False):
  """Q with positive-diagonal R of each (d, d) float32 matrix: (n, d, d) -> (n, d, d)."""
  n, d, d2 = blocks.shape
  if d != d2 or not supported(d, blocks.dtype):
    raise ValueError(f'orthogonal_factor: needs (n, d, d) float32 matrices with d <= 128; '
                     f'got {blocks.shape} {blocks.dtype}.')
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  dp = pow2_at_least(d)
  eye = jnp.eye(dp, dtype=jnp.float32)
  padded = jnp.broadcast_to(eye, (n, dp, dp)).at[:, :d, :d].set(blocks)
  whole = pl.BlockSpec((None, dp, dp), lambda i: (i, 0, 0))
  q = pl.pallas_call(
      functools.partial(_kernel, d=d), grid=(n,), in_specs=[whole], out_specs=whole,
      out_shape=jax.ShapeDtypeStruct((n, dp, dp), jnp.float32),
      compiler_params=triton_params(*COMPILER_PARAMS, interpret), interpret=interpret,
      name='plait_orthogonal_factor')(padded)
  return q[:, :d, :d]


def _kernel(a_ref, q_ref, *, d):
  """One matrix: d Householder reflections on R (from A) and Q (from I)."""
  r = a_ref[...]
  dp = r.shape[0]
  row = jax.lax.broadcasted_iota(jnp.int32, (dp, dp), 0)
  col = jax.lax.broadcasted_iota(jnp.int32, (dp, dp), 1)
  rows = jax.lax.broadcasted_iota(jnp.int32, (dp,), 0)

  def reflect(j, carry):
    r, q, signs = carry
    x = jnp.sum(jnp.where((col == j) & (row >= j), r, 0.0), axis=1)    # R[j:, j], 0 above
    head = jnp.sum(jnp.where(rows == j, x, 0.0))                         # x_0 = R[j, j]
    norm = jnp.sqrt(jnp.sum(x * x))
    # Scalars are chosen by arithmetic, not `where`: Triton's lowering of a select on a
    # scalar predicate yields a boolean (found when the kernel first ran on the H200).
    sign = 1.0 - 2.0 * (head < 0).astype(jnp.float32)
    v = x + jnp.where(rows == j, sign * norm, 0.0)                       # x + sign |x| e_0
    v_norm = jnp.sqrt(jnp.sum(v * v))
    v = v / jnp.maximum(v_norm, 1e-30)                                   # v = 0 stays 0
    r = r - 2.0 * v[:, None] * jnp.sum(v[:, None] * r, axis=0)[None, :]
    q = q - 2.0 * jnp.sum(q * v[None, :], axis=1)[:, None] * v[None, :]
    # R's new diagonal entry is -sign |x|: Q's column j is flipped when it is negative
    # (a zero column, |x| = 0, keeps its sign).
    flip = 1.0 - (1.0 + sign) * (norm > 0).astype(jnp.float32)          # -sign, or 1 if |x| = 0
    signs = jnp.where(rows == j, flip, signs)
    return r, q, signs

  eye = jnp.where(row == col, 1.0, 0.0)
  _, q, signs = jax.lax.fori_loop(0, d, reflect, (r, eye, jnp.ones((dp,), jnp.float32)))
  q_ref[...] = q * signs[None, :]
