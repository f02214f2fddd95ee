"""Helpers for the attention tests: an independent numpy multi-head attention."""
import numpy as np


def complex_rotate(x, positions, base=10000.0):
  """Rotary positions' oracle: pair (x_i, x_{i + d/2}) as the complex number x_i + 1j x_{i+d/2},
  times exp(1j * position * base**(-2i/d)); x (..., L, d) float64, positions (L,)."""
  x = np.asarray(x, np.float64)
  half = x.shape[-1] // 2
  theta = base ** (-np.arange(half) * 2.0 / x.shape[-1])
  z = (x[..., :half] + 1j * x[..., half:]) * np.exp(1j * np.outer(positions, theta))
  return np.concatenate([z.real, z.imag], axis=-1)


def numpy_multihead(x, weights, n_heads, mask=None, allowed=None, rotary=False):
  """Multi-head attention written out in float64 numpy, the oracle for `Attention` layers.

  Args:
    x: (B, L, d_model); weights: the layer's AttentionWeights (q, k, v, o), with biases.
    mask: (B, L) key validity or None; allowed: (L, L) query-may-see-key or None (all).
    rotary: rotate q and k by their positions 0..L-1 (`complex_rotate`).
  Returns:
    (B, L, d_model); a query that sees no valid key contributes 0 before the output Dense.
  """
  x = np.asarray(x, np.float64)
  (wq, bq), (wk, bk), (wv, bv), (wo, bo) = [[np.asarray(t, np.float64) for t in w]
                                            for w in weights]
  b, length, _ = x.shape
  heads = lambda t: t.reshape(b, length, n_heads, -1)
  q, k, v = heads(x @ wq + bq), heads(x @ wk + bk), heads(x @ wv + bv)
  if rotary:   # (B, L, H, d) -> rotate over L -> back
    turn = lambda t: complex_rotate(t.swapaxes(1, 2), np.arange(length)).swapaxes(1, 2)
    q, k = turn(q), turn(k)
  logits = np.einsum('bqhd,bkhd->bhqk', q, k) / np.sqrt(q.shape[-1])
  ok = np.ones((b, 1, length, length), bool)
  if allowed is not None:
    ok = ok & allowed
  if mask is not None:
    ok = ok & np.asarray(mask, bool)[:, None, None, :]
  logits = np.where(ok, logits, -np.inf)
  top = np.max(logits, axis=-1, keepdims=True)
  p = np.exp(logits - np.where(np.isfinite(top), top, 0.0))
  p = p / np.maximum(p.sum(-1, keepdims=True), 1e-300)
  out = np.einsum('bhqk,bkhd->bqhd', p, v).reshape(b, length, -1)
  return out @ wo + bo


def randomize_biases(weights, seed=1):
  """The layer's weights with random (not zero) biases, so the oracle checks them too."""
  rng = np.random.default_rng(seed)
  def randomize(w):
    if w is None or w.bias is None:
      return w
    return w._replace(bias=rng.standard_normal(w.bias.shape).astype(np.float32))
  return type(weights)(*(randomize(w) for w in weights))
