"""Exact attention in plain einsums: the test oracles for every attention kind.

Slow (materializes the full (Lq, Lk) matrix) and always float32 at highest matmul
precision, so a fast or approximate kind can be compared against it on random inputs.
Masking convention: a query that sees no valid key (all of its keys masked out, e.g. a
padding query at the start of a left-padded causal sequence) outputs exactly 0. Dense and
chunked attention follow it; approximate kinds need only stay finite there, so compare
their outputs on rows that see at least one key.
"""
import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.attention.base import large_negative
from plait.layers.attention.lsh.hashing import shared_qk_keys


def dense_mask_attention(q, k, v, bool_mask):
  """softmax(q k^T / sqrt(d) where allowed) v with an explicit boolean mask.

  Args:
    q: (..., Lq, d); k: (..., Lk, d); v: (..., Lk, dv).
    bool_mask: broadcastable to (..., Lq, Lk); True = query may attend to key.
  Returns:
    (..., Lq, dv) float32; 0 for rows where bool_mask is all False.
  """
  q, k, v = (jnp.asarray(t, jnp.float32) for t in (q, k, v))
  logits = jnp.einsum('...qd,...kd->...qk', q, k, precision=jax.lax.Precision.HIGHEST)
  logits = logits / np.sqrt(q.shape[-1])
  return _masked_softmax_values(logits, jnp.asarray(bool_mask, jnp.bool_), v)


def reference_attention(q, k, v, mask=None, causal=False, bias=None):
  """Exact attention with a key-padding mask, causal masking and an additive bias.

  Args:
    q: (..., Lq, d); k: (..., Lk, d); v: (..., Lk, dv).
    mask: (..., Lk) bool key validity (True = real token), or None.
    causal: query i sits at absolute position Lk - Lq + i (aligned to the end, as when
      decoding after a cached prefix) and sees keys at positions <= its own.
    bias: added to the logits, broadcastable to (..., Lq, Lk), or None.
  Returns:
    (..., Lq, dv) float32; 0 for rows that see no valid key.
  """
  q, k, v = (jnp.asarray(t, jnp.float32) for t in (q, k, v))
  lq, lk = q.shape[-2], k.shape[-2]
  logits = jnp.einsum('...qd,...kd->...qk', q, k, precision=jax.lax.Precision.HIGHEST)
  logits = logits / np.sqrt(q.shape[-1])
  if bias is not None:
    logits = logits + jnp.asarray(bias, jnp.float32)
  allowed = jnp.ones((lq, lk), jnp.bool_)
  if causal:
    allowed = causal_mask(lq, lk)
  if mask is not None:
    allowed = allowed & jnp.asarray(mask, jnp.bool_)[..., None, :]
  return _masked_softmax_values(logits, allowed, v)


def causal_mask(lq, lk, q_offset=None):
  """(lq, lk) bool: query i (at position q_offset + i) sees keys at positions <= its own.

  q_offset defaults to lk - lq (queries are the last lq positions).
  """
  q_offset = lk - lq if q_offset is None else q_offset
  return (jnp.arange(lk)[None, :] <= (q_offset + jnp.arange(lq))[:, None])


def shared_qk_reference(q, v, valid=None, causal=False, allowed=None, normalize_keys=True):
  """Dense exact shared-QK attention with the hard self rule: the oracle for LSH.

  Keys are `shared_qk_keys(q, normalize_keys)` (unit-RMS queries, or the queries when
  normalize_keys=False); query i attends, with softmax over q_i.k_j/sqrt(d), to every key j
  that is valid, (if causal) j <= i, and (if given) allowed[i, j]; itself only if that set
  has no j != i. O(L^2), float32, highest precision.

  Args:
    q: (L, d); v: (L, d_v); valid: (L,) bool or None; allowed: (L, L) bool or None.
  Returns:
    (L, d_v) float32 (0 for rows that see nothing).
  """
  length = q.shape[0]
  ok = jnp.ones((length, length), jnp.bool_)
  if valid is not None:
    ok = ok & jnp.asarray(valid, jnp.bool_)[None, :]
  if causal:
    ok = ok & (jnp.arange(length)[None, :] <= jnp.arange(length)[:, None])
  if allowed is not None:
    ok = ok & allowed
  eye = jnp.eye(length, dtype=jnp.bool_)
  others = jnp.any(ok & ~eye, axis=1, keepdims=True)
  ok = ok & ~(eye & others)
  q32 = jnp.asarray(q, jnp.float32)
  logits = jnp.einsum('qd,kd->qk', q32, shared_qk_keys(q32, normalize_keys),
                      precision=jax.lax.Precision.HIGHEST) / np.sqrt(q.shape[-1])
  probs = jax.nn.softmax(jnp.where(ok, logits, large_negative(logits.dtype)), axis=-1)
  probs = jnp.where(jnp.any(ok, axis=1, keepdims=True), probs, 0.0)
  return jnp.einsum('qk,kd->qd', probs, jnp.asarray(v, jnp.float32),
                    precision=jax.lax.Precision.HIGHEST)


def _masked_softmax_values(logits, allowed, v):
  allowed = jnp.broadcast_to(allowed, logits.shape)
  logits = jnp.where(allowed, logits, large_negative(logits.dtype))
  probs = jax.nn.softmax(logits, axis=-1)
  probs = jnp.where(jnp.any(allowed, axis=-1, keepdims=True), probs, 0.0)
  return jnp.einsum('...qk,...kd->...qd', probs, v, precision=jax.lax.Precision.HIGHEST)


__all__ = ['causal_mask', 'dense_mask_attention', 'reference_attention', 'shared_qk_reference']
