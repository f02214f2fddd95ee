"""Exact softmax attention in plain einsums: the test oracle for every attention kind.

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


def _masked_softmax_values(logits, allowed, v):
  allowed = jnp.broadcast_to(allowed, logits.shape)
  logits = jnp.where(allowed, logits, -1e30)
  probs = jax.nn.softmax(logits, axis=-1)
  probs = jnp.where(jnp.any(allowed, axis=-1, keepdims=True), probs, 0.0)
  return jnp.einsum('...qk,...kd->...qd', probs, v, precision=jax.lax.Precision.HIGHEST)


__all__ = ['causal_mask', 'dense_mask_attention', 'reference_attention']
