"""Angular LSH for Reformer attention: random rotations, bucket ids, shared-QK keys.

A vector x is hashed by a random Gaussian projection R (d, n_buckets / 2):
bucket = argmax([x R, -x R]) (Andoni et al. 2015, as in the Reformer paper). Nearby
directions (small angle) tend to share a bucket. With a factorized bucket count such as
[32, 32], each factor f hashes with its own f / 2 columns and the ids combine as digits
(bucket = b0 + 32 * b1), giving 1024 buckets from only 32 projected columns.

Each of the `n_hashes` rounds uses its own rotation.
"""
import math

import jax
import jax.numpy as jnp


def check_n_buckets(n_buckets, where='LSH'):
  """Validates `n_buckets` (int or list of ints); returns the factors as a tuple.

  An int must be 1 (no hashing: everything in one bucket) or even; every factor of a
  list must be even, since each factor hashes with argmax over [xR, -xR].
  """
  if isinstance(n_buckets, int):
    if n_buckets == 1:
      return (1,)
    factors = (n_buckets,)
  elif isinstance(n_buckets, (list, tuple)) and n_buckets and all(
      isinstance(f, int) for f in n_buckets):
    factors = tuple(n_buckets)
  else:
    raise ValueError(f'{where}: n_buckets must be an int or a non-empty list of ints, '
                     f'got {n_buckets!r}.')
  for f in factors:
    if f < 2 or f % 2:
      raise ValueError(
          f'{where}: n_buckets={n_buckets!r}: each bucket count must be even (the hash takes '
          f'argmax over [xR, -xR], so it always makes an even number of buckets); got {f}. '
          'Use an even number, a list of even factors, or n_buckets=1 for no hashing.')
  return factors


def total_buckets(factors):
  """Number of buckets a (validated) factor tuple makes."""
  return math.prod(factors)


def rotation_columns(factors):
  """Columns of the random projection: sum of factor / 2 (0 for a single bucket)."""
  return 0 if factors == (1,) else sum(f // 2 for f in factors)


def random_rotations(rng, d_head, n_hashes, factors):
  """Gaussian projections (d_head, n_hashes, columns), float32; one per hash round."""
  return jax.random.normal(rng, (d_head, n_hashes, rotation_columns(factors)), jnp.float32)


def hash_vectors(vecs, rotations, factors):
  """Bucket ids (n_hashes, L) int32 in [0, total_buckets) for vecs (L, d_head).

  Scale-invariant (argmax of a linear map), so hashing q or normalized q is the same.
  """
  n_hashes = rotations.shape[1]
  if factors == (1,):
    return jnp.zeros((n_hashes, vecs.shape[0]), jnp.int32)
  rotated = jnp.einsum('ld,drc->rlc', vecs.astype(jnp.float32), rotations,
                       precision=jax.lax.Precision.HIGHEST)
  buckets, start, scale = 0, 0, 1
  for f in factors:
    part = rotated[..., start:start + f // 2]
    digit = signed_argmax(part)
    buckets = buckets + scale * digit
    start, scale = start + f // 2, scale * f
  return buckets


def signed_argmax(part):
  """argmax(concatenate([part, -part]), -1) as int32, without building the concatenation.

  The first maximum of [part, -part] is the first maximum of part when max(part) >=
  -min(part) (first-half indices come first), else f/2 + the first minimum of part.
  Same ids (NaN included: argmax picks the first NaN, here too); saves a (n_hashes, L, f)
  float32 temporary per factor, 1 GiB per head at 2^20 tokens and f = 128.
  """
  hi, lo = jnp.argmax(part, axis=-1), jnp.argmin(part, axis=-1)
  at = lambda i: jnp.take_along_axis(part, i[..., None], axis=-1)[..., 0]
  top = at(hi)   # NaN when part has one (argmax picks the first NaN, as it does on [x, -x]).
  first_half = jnp.isnan(top) | (top >= -at(lo))
  return jnp.where(first_half, hi, lo + part.shape[-1]).astype(jnp.int32)


def shared_qk_keys(q, normalize=True, epsilon=1e-6):
  """Keys of shared-QK attention: each query rescaled to unit RMS (norm sqrt(d_head)).

  With the usual 1/sqrt(d_head) logit scale this gives logits q_i . q_j / |q_j|: the
  query dotted with the key's unit direction, as in Reformer. normalize=False keeps the
  queries themselves as keys (logits q_i . q_j / sqrt(d_head), as LRA's Reformer). Computed
  in at least float32 (float64 stays float64), returned in q's dtype.
  """
  if not normalize:
    return q
  q32 = q.astype(jnp.promote_types(q.dtype, jnp.float32))
  return (q32 * shared_qk_scale(q, normalize, epsilon)[..., None]).astype(q.dtype)


def shared_qk_scale(q, normalize=True, epsilon=1e-6):
  """(..., L) per-row factor of `shared_qk_keys`: 1 / RMS(q_row) (ones when not normalize),
  in at least float32.

    >>> shared_qk_scale(jnp.full((3, 4), 2.0))   # [0.5, 0.5, 0.5]
  """
  q32 = q.astype(jnp.promote_types(q.dtype, jnp.float32))
  if not normalize:
    return jnp.ones(q32.shape[:-1], q32.dtype)
  return jax.lax.rsqrt(jnp.mean(q32 * q32, axis=-1) + epsilon)


def hash_buckets(q, valid, rotations, cfg):
  """(n_hashes, L) bucket ids; invalid positions get the extra bucket n_buckets."""
  buckets = hash_vectors(q, rotations, cfg.factors)
  return jnp.where(valid[None, :], buckets, cfg.n_buckets)


__all__ = ['check_n_buckets', 'hash_buckets', 'hash_vectors', 'random_rotations',
           'rotation_columns', 'shared_qk_keys', 'shared_qk_scale', 'signed_argmax',
           'total_buckets']
