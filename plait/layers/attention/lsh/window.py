"""LSH attention of chunks of sorted queries, each to its window of neighbouring chunks.

The per-chunk math of one hash round, shared by the all-at-once path (chunked.py) and
the blocked path (blocked.py), so that both compute the same numbers. Inputs are in
sorted order; masks are built here from small per-position vectors (positions, validity,
chunk ids) by broadcasting.
"""
import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.attention.base import large_negative

# Subtracted from the logit of a token attending to itself. Logits are bounded by
# |l_ij| = |q_i . k_j| / sqrt(d) <= |q_i| (keys have norm sqrt(d)), so whenever any
# other key is allowed, self gets weight exp(-1e5 + 2|q_i|), exactly 0 in float32 for
# |q_i| < 5e4. It is a penalty, not a mask, so a token with no other target (e.g. the
# first one under causal masking) still attends to itself; and it is far above the
# masked value, so self beats masked keys. It also makes a round where i saw only
# itself get ~0 weight in the multi-round combination (its logsumexp is ~ -1e5), so
# self is used only when no round offers another target. The paper uses 1e5 as well.
SELF_PENALTY = 1e5


def logits_dtype(dtype):
  """Logits and softmax run in float32, or float64 when the inputs are float64."""
  return jnp.promote_types(dtype, jnp.float32)


def masked_logits(q, k, allowed, is_self, count=None):
  """Logits q.k/sqrt(d) with the self penalty, -log(count) and the mask (`large_negative`).

  At least float32 (float64 inputs stay float64, for gradient checks).
  q: (..., Lq, d); k: (..., Lk, d); allowed, is_self, count: (..., Lq, Lk).
  """
  dtype = logits_dtype(q.dtype)
  logits = jnp.einsum('...qd,...kd->...qk', q, k, preferred_element_type=dtype)
  logits = logits / np.sqrt(q.shape[-1]) - SELF_PENALTY * is_self
  if count is not None:
    logits = logits - jnp.log(jnp.maximum(count, 1).astype(dtype))
  return jnp.where(allowed, logits, large_negative(dtype))


def window_count(cq, ck, cfg):
  """N_ij: in how many rounds key j's chunk lies in query i's window.

  cq: (n, c, R) and ck: (n, Wc, R) chunk ids of the queries and keys in every round.
  Returns (n, c, Wc) int32, one round at a time (no (R, n, c, Wc) intermediate).
  """
  count = 0
  for r in range(cq.shape[-1]):
    diff = ck[:, None, :, r] - cq[:, :, None, r]
    count = count + ((diff >= -cfg.n_chunks_before) & (diff <= cfg.n_chunks_after)).astype(
        jnp.int32)
  return count


def window_attention(q, k_vec, k_val, k_valid, in_range, q_pos, k_pos, cq, ck, cfg):
  """Attention of n query chunks (one round, sorted order) to their key windows.

  Args:
    q: (n, c, d) queries; k_vec: (n, Wc, d) keys; k_val: (n, Wc, d_v) values.
    k_valid: (n, Wc) bool, real keys; in_range: (n, Wc) bool, the key's chunk exists
      (not wrapped around or past an end of the round).
    q_pos: (n, c), k_pos: (n, Wc) original positions (causal and self masks).
    cq: (n, c, R), ck: (n, Wc, R) chunk ids in every round, or None (one round).
    cfg: LSHConfig.
  Returns:
    (out (n, c, d_v), lse (n, c), probs (n, c, Wc)); out, lse and probs in at least float32.
  """
  allowed = (k_valid & in_range)[:, None, :]
  if cfg.causal:
    allowed = allowed & (k_pos[:, None, :] <= q_pos[:, :, None])
  is_self = k_pos[:, None, :] == q_pos[:, :, None]
  count = None if cq is None else window_count(cq, ck, cfg)
  logits = masked_logits(q, k_vec, allowed, is_self, count)   # (n, c, Wc)
  lse = jax.nn.logsumexp(logits, axis=-1)
  probs = jnp.exp(logits - lse[..., None])
  out = jnp.einsum('nqk,nkd->nqd', probs.astype(k_val.dtype), k_val,
                   preferred_element_type=logits_dtype(k_val.dtype))
  return out, lse, probs


def chunk_in_range(first, n, cfg, n_chunks):
  """(n, Wc) bool: the window chunks of query chunks first..first+n-1 lie in [0, n_chunks)."""
  shifts = jnp.arange(-cfg.n_chunks_before, cfg.n_chunks_after + 1)
  neighbour = first + jnp.arange(n)[:, None] + shifts[None, :]
  return jnp.repeat((neighbour >= 0) & (neighbour < n_chunks), cfg.chunk_len, axis=1)


__all__ = ['SELF_PENALTY', 'chunk_in_range', 'logits_dtype', 'masked_logits',
           'window_attention', 'window_count']
