"""Rotary position embeddings (RoPE, Su et al. 2021): positions as rotations of q and k.

Each head's d_head features form d_head / 2 pairs (feature i with feature i + d_head / 2);
pair i of the vector at position p is rotated by the angle p * base**(-2i / d_head). A
query at position m and a key at position n then score q_m R(n - m) k_n: attention sees
only their distance, never the absolute positions. `Attention(rotary=True)` rotates q and k
after the projections, for every attention kind (dense, chunked, LSH, FAVOR+,
block-sparse); the models take it as `positional='rotary'` (no additive encodings then).

  >>> q = rotate(q, jnp.arange(q.shape[-2]))      # (..., L, d_head), d_head even
"""
import jax.numpy as jnp

BASE = 10000.0   # the angles' base wavelength (RoFormer's and most LMs' default)


def angles(positions, d_head, base=BASE):
  """(L,) integer positions -> (L, d_head // 2) float32 rotation angles."""
  inv_freq = base ** (-jnp.arange(0, d_head, 2, dtype=jnp.float32) / d_head)
  return positions.astype(jnp.float32)[:, None] * inv_freq[None, :]


def rotate(x, positions, base=BASE):
  """Rotates x (..., L, d_head) by positions (L,): the same dtype and shape back.

  Computed in float32 and rounded once to x's dtype. d_head must be even.

    >>> rotate(jnp.ones((1, 4)), jnp.array([0]))   # position 0: unchanged
  """
  d_head = x.shape[-1]
  if d_head % 2:
    raise ValueError(f'rotary positions need an even d_head, got x of shape {x.shape}.')
  theta = angles(positions, d_head, base)
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  x32 = x.astype(jnp.float32)
  x1, x2 = x32[..., :d_head // 2], x32[..., d_head // 2:]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


__all__ = ['BASE', 'angles', 'rotate']
