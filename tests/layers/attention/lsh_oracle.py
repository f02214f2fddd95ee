"""An independent numpy oracle for LSH attention: exact softmax over the union of windows.

LSH attention with the duplicate correction equals, for each query i, exact shared-QK
softmax attention over the set of keys that some round's chunk window puts next to i.
This file recomputes that set from scratch (numpy hashing, lexsort by (bucket, position),
chunk windows) so the tests do not trust the implementation's own sort or gather code.
"""
import numpy as np


def numpy_hash(q, rotations, factors):
  """(n_hashes, L) bucket ids: per factor argmax over [xR, -xR], combined as digits."""
  q = np.asarray(q, np.float64)
  rotations = np.asarray(rotations, np.float64)
  n_hashes = rotations.shape[1]
  if tuple(factors) == (1,):
    return np.zeros((n_hashes, q.shape[0]), np.int64)
  buckets, start, scale = 0, 0, 1
  for f in factors:
    part = np.einsum('ld,drc->rlc', q, rotations[..., start:start + f // 2])
    buckets = buckets + scale * np.argmax(np.concatenate([part, -part], -1), -1)
    start, scale = start + f // 2, scale * f
  return buckets


def window_union(buckets, valid, cfg):
  """(L, L) bool: key j lies in query i's chunk window in at least one round.

  Invalid positions and the padding up to a multiple of chunk_len sort last (bucket
  n_buckets), as in the implementation.
  """
  n_hashes, length = buckets.shape
  c = cfg.chunk_len
  padded = -(-length // c) * c
  union = np.zeros((padded, padded), bool)
  counts = np.zeros((padded, padded), np.int64)
  for r in range(n_hashes):
    b = np.full(padded, cfg.n_buckets)
    b[:length] = np.where(valid, buckets[r], cfg.n_buckets)
    order = np.lexsort((np.arange(padded), b))   # sort by bucket, then position
    chunk = np.empty(padded, np.int64)
    chunk[order] = np.arange(padded) // c
    diff = chunk[None, :] - chunk[:, None]
    inside = (diff >= -cfg.n_chunks_before) & (diff <= cfg.n_chunks_after)
    union |= inside
    counts += inside
  return union[:length, :length], counts[:length, :length]


def shared_qk_oracle(q, v, valid=None, causal=False, allowed=None, normalize_keys=True):
  """float64 exact shared-QK attention with the self-as-fallback rule.

  Keys are the queries rescaled to unit RMS (normalize_keys=False: the queries themselves);
  query i sees key j if valid, (causal) j <= i and allowed[i, j]; itself only if it sees no
  other key. Returns (out, probs).
  """
  q = np.asarray(q, np.float64)
  v = np.asarray(v, np.float64)
  length, d = q.shape
  ok = np.ones((length, length), bool)
  if valid is not None:
    ok &= np.asarray(valid, bool)[None, :]
  if causal:
    ok &= np.tril(np.ones((length, length), bool))
  if allowed is not None:
    ok &= allowed
  eye = np.eye(length, dtype=bool)
  ok &= ~(eye & np.any(ok & ~eye, axis=1, keepdims=True))
  keys = q / np.sqrt(np.mean(q * q, -1, keepdims=True) + 1e-6) if normalize_keys else q
  logits = np.where(ok, q @ keys.T / np.sqrt(d), -np.inf)
  top = np.max(logits, -1, keepdims=True)
  p = np.exp(logits - np.where(np.isfinite(top), top, 0.0))
  p = p / np.maximum(p.sum(-1, keepdims=True), 1e-300)
  return p @ v, p


def vary_row_norms(x, seed=0, spread=1.0):
  """x with each row (last axis) scaled by exp(uniform(-spread, spread)): rows of varied
  norms, on which unit-RMS keys (normalize_keys=True) and the raw queries as keys
  (normalize_keys=False) give clearly different attention. Hashing is scale invariant, so
  the buckets stay those of x."""
  x = np.asarray(x)
  factors = np.exp(np.random.default_rng(seed).uniform(-spread, spread, x.shape[:-1] + (1,)))
  return (x * factors).astype(x.dtype)
