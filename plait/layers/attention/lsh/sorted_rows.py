"""LSH's sorted copies made from sequence-major (B, L, H, ...) arrays, and the rounds back.

The fused kernel (fused.py) takes each (head, round) pair's rows in sorted order, (B, H, R,
L, d), while an `Attention` layer's projections are (B, L, H, d). Gathering the sorted rows
straight from the sequence-major array (flat row index position * H + head) and returning
the rounds sequence-major lets XLA cancel the layer's head-major transposes against ours:
no head-major copy of q, v, the output or their gradients is made. Both functions are
permutation gathers whose gradients are each other (no scatter-add).

  >>> qs = to_sorted(q_seq, order, sorted_slot)       # (B, L, H, d) -> (B, H, R, L, d)
  >>> rounds = from_sorted(out_s, sorted_slot, order)  # (B, H, R, L, d) -> (B, L, H, R, d)
"""
import jax
import jax.numpy as jnp

__all__ = ['from_sorted', 'to_sorted']


@jax.custom_vjp
def to_sorted(t, order, sorted_slot):
  """Each (head, round) pair's rows in sorted order: out[b, h, r, i] = t[b, order[b, h, r, i],
  h].

  t: (B, L, H, d); order: (B, H, R, L) int32, a permutation of each (b, h, r) row;
  sorted_slot: its inverse. Returns (B, H, R, L, d) in t's dtype.
  """
  del sorted_slot   # for the gradient
  return _sorted_rows(t, order)


def _sorted_rows(t, order):
  """to_sorted's rows; t (B, L, H, R, d) gives round r its own rows: t[b, order[...], h, r]."""
  batch, heads = t.shape[0], t.shape[2]
  rounds = order.shape[2]
  index = order * heads + jnp.arange(heads, dtype=order.dtype)[None, :, None, None]
  if t.ndim == 5:
    index = index * rounds + jnp.arange(rounds, dtype=order.dtype)[None, None, :, None]
  return _gather_rows(t.reshape(batch, -1, t.shape[-1]), index)


@jax.custom_vjp
def from_sorted(s, sorted_slot, order):
  """Sorted rows back in sequence order, rounds apart: out[b, l, h, r] = s[b, h, r,
  sorted_slot[b, h, r, l]].

  s: (B, H, R, L, d); sorted_slot (B, H, R, L) int32 (`to_sorted`'s) and order its inverse.
  Returns (B, L, H, R, d) in s's dtype.
  """
  del order   # for the gradient
  batch, heads, rounds, length = s.shape[:4]
  pair = (jnp.arange(heads, dtype=sorted_slot.dtype)[:, None] * rounds
          + jnp.arange(rounds, dtype=sorted_slot.dtype)[None, :])          # (H, R)
  index = (pair[None, :, :, None] * length + sorted_slot).transpose(0, 3, 1, 2)
  return _gather_rows(s.reshape(batch, -1, s.shape[-1]), index)


def _gather_rows(flat, index):
  """flat (B, N, d) and index (B, ...) of rows in [0, N) -> (B, ..., d)."""
  rows = jnp.take_along_axis(flat, index.reshape(index.shape[0], -1, 1), axis=1,
                             mode='promise_in_bounds', wrap_negative_indices=False)
  return rows.reshape(index.shape + flat.shape[-1:])


def _to_sorted_fwd(t, order, sorted_slot):
  return to_sorted(t, order, sorted_slot), (order, sorted_slot)


def _to_sorted_bwd(residuals, g):
  order, sorted_slot = residuals
  back = from_sorted(g, sorted_slot, order)                      # (B, L, H, R, d)
  # Every round read the same rows: their gradients add up.
  return jnp.sum(back.astype(jnp.float32), axis=3).astype(g.dtype), None, None


def _from_sorted_fwd(s, sorted_slot, order):
  return from_sorted(s, sorted_slot, order), (sorted_slot, order)


def _from_sorted_bwd(residuals, g):
  sorted_slot, order = residuals
  return _sorted_rows(g, order), None, None


to_sorted.defvjp(_to_sorted_fwd, _to_sorted_bwd)
from_sorted.defvjp(_from_sorted_fwd, _from_sorted_bwd)
