"""The Reformer LSH attention algorithm for one (batch, head) pair, plus its dense oracle.

Per hash round: hash every position, sort positions by (bucket, position), cut the
sorted order into chunks of `chunk_len`, and let each chunk attend to itself and to
`n_chunks_before` / `n_chunks_after` neighbouring chunks of the same round (no wrap
around the ends). Keys are the queries rescaled to unit RMS (shared QK). Masks, all by
ORIGINAL position: padding keys never receive weight; with `causal`, key j > query i
never does; a token sees itself only when it has no other target (see SELF_PENALTY).
Rounds combine with weights softmax over rounds of each round's logsumexp, after
subtracting log(N_ij) from every logit, N_ij = the number of rounds in which i's window
holds j (the paper's duplicate correction). With it the combined output is EXACTLY
softmax attention over the union of i's windows across rounds (each key counted once);
`lsh_attention_weights` returns that effective (L, L) matrix for tests.

Padding (user-masked positions and the automatic padding of the length up to a multiple
of `chunk_len`) goes to an extra bucket that sorts after all real buckets, so it never
changes which real tokens share a chunk. Outputs at padding positions are unspecified
(finite). Memory per round is O(L * (1 + n_before + n_after) * chunk_len).
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.attention.base import large_negative
from plait.layers.attention.lsh_hashing import hash_vectors, shared_qk_keys, total_buckets

# Subtracted from the logit of a token attending to itself. Logits are bounded by
# |l_ij| = |q_i . k_j| / sqrt(d) <= |q_i| (keys have norm sqrt(d)), so whenever any
# other key is allowed, self gets weight exp(-1e5 + 2|q_i|), exactly 0 in float32 for
# |q_i| < 5e4. It is a penalty, not a mask, so a token with no other target (e.g. the
# first one under causal masking) still attends to itself; and it is far above the
# masked value, so self beats masked keys. It also makes a round where i saw only
# itself get ~0 weight in the multi-round combination (its logsumexp is ~ -1e5), so
# self is used only when no round offers another target. The paper uses 1e5 as well.
SELF_PENALTY = 1e5
# Masked logits: finite (no NaN when a whole row is masked); float32's value also serves
# float64 logits (it is still far below any real logit).
MASKED = large_negative(jnp.float32)


def logits_dtype(dtype):
  """Logits and softmax run in float32, or float64 when the inputs are float64."""
  return jnp.promote_types(dtype, jnp.float32)


@dataclasses.dataclass(frozen=True)
class LSHConfig:
  """Hyperparameters of LSH attention (validated by LSHAttention)."""
  n_hashes: int
  factors: tuple        # bucket-count factors, from lsh_hashing.check_n_buckets.
  chunk_len: int
  n_chunks_before: int
  n_chunks_after: int
  causal: bool

  @property
  def n_buckets(self):
    return total_buckets(self.factors)

  @property
  def window_chunks(self):
    return self.n_chunks_before + 1 + self.n_chunks_after


def hash_buckets(q, valid, rotations, cfg):
  """(n_hashes, L) bucket ids; invalid positions get the extra bucket n_buckets."""
  buckets = hash_vectors(q, rotations, cfg.factors)
  return jnp.where(valid[None, :], buckets, cfg.n_buckets)


def masked_logits(q, k, allowed, is_self, count=None):
  """Logits q.k/sqrt(d) with the self penalty, -log(count) and the mask.

  At least float32 (float64 inputs stay float64, for gradient checks).
  q: (..., Lq, d); k: (..., Lk, d); allowed, is_self, count: (..., Lq, Lk).
  """
  dtype = logits_dtype(q.dtype)
  logits = jnp.einsum('...qd,...kd->...qk', q, k, preferred_element_type=dtype)
  logits = logits / np.sqrt(q.shape[-1]) - SELF_PENALTY * is_self
  if count is not None:
    logits = logits - jnp.log(jnp.maximum(count, 1).astype(dtype))
  return jnp.where(allowed, logits, MASKED)


def lsh_attention(q, v, valid, rotations, cfg, buckets=None):
  """LSH self-attention of one (batch, head) pair.

  Args:
    q: (L, d) queries (not pre-scaled); keys are derived from them.
    v: (L, d_v) values.
    valid: (L,) bool, True = real token.
    rotations: (d, n_hashes, columns) from lsh_hashing.random_rotations.
    cfg: LSHConfig.
    buckets: optional (n_hashes, L) int32 bucket ids returned by an earlier call; when
      given, they are used instead of hashing q (rotations are then ignored). This is
      exact bucket replay, e.g. for a reversible backward pass whose reconstructed q
      differs from the original by rounding (which could flip a near-tie hash).
  Returns:
    (out (L, d_v) in q's dtype, buckets (n_hashes, L) int32 as used for sorting).
  """
  rounds = _lsh_rounds(q, v, valid, rotations, cfg, buckets)
  length = q.shape[0]
  return rounds['out'][:length].astype(q.dtype), rounds['buckets'][:, :length]


def lsh_attention_weights(q, valid, rotations, cfg, buckets=None):
  """The effective (L, L) attention matrix of `lsh_attention` (for tests/inspection).

  Entry [i, j] is the total weight query i gives key j over all rounds, so
  out = weights @ v. O(L^2) memory: small inputs only.
  """
  length = q.shape[0]
  r = _lsh_rounds(q, q, valid, rotations, cfg, buckets)
  round_w = jnp.take_along_axis(r['round_weights'], r['q_pos'].reshape(cfg.n_hashes, -1),
                                axis=1).reshape(r['q_pos'].shape)
  vals = r['probs'] * round_w[..., None]            # (R, n_chunks, c, W)
  rows = jnp.broadcast_to(r['q_pos'][..., None], vals.shape)
  cols = jnp.broadcast_to(r['k_pos'][:, :, None, :], vals.shape)
  padded = r['out'].shape[0]
  dense = jnp.zeros((padded, padded), jnp.float32).at[rows, cols].add(vals)
  return dense[:length, :length]


def _lsh_rounds(q, v, valid, rotations, cfg, buckets=None):
  """All rounds; returns a dict of the combined output and per-round internals."""
  c = cfg.chunk_len
  length = q.shape[0]
  n_chunks = -(-length // c)
  pad = n_chunks * c - length
  pad_rows = lambda t: jnp.pad(t, ((0, pad),) + ((0, 0),) * (t.ndim - 1))
  q, v, valid = pad_rows(q), pad_rows(v), pad_rows(valid.astype(jnp.bool_))
  padded = n_chunks * c
  if buckets is None:
    buckets = hash_buckets(q, valid, rotations, cfg)
  else:
    buckets = jnp.pad(jnp.asarray(buckets, jnp.int32), ((0, 0), (0, pad)),
                      constant_values=cfg.n_buckets)
    buckets = jnp.where(valid[None, :], buckets, cfg.n_buckets)
  buckets = jax.lax.stop_gradient(buckets)
  order = jnp.argsort(buckets, axis=-1, stable=True)   # (R, Lp): sorted slot -> position
  ticker = jnp.arange(padded)
  sorted_slot = jax.vmap(lambda o: jnp.zeros_like(o).at[o].set(ticker))(order)
  chunk_of = sorted_slot // c                           # (R, Lp): position -> its chunk
  keys = shared_qk_keys(q)
  one_round = functools.partial(_one_round, q, keys, v, valid, chunk_of, cfg)
  out_s, lse_s, probs, q_pos, k_pos = jax.vmap(one_round)(order)
  # Back to original order: position p of round r sits at sorted slot sorted_slot[r, p].
  out_r = jnp.take_along_axis(out_s.reshape(cfg.n_hashes, padded, -1),
                              sorted_slot[..., None], axis=1)
  lse_r = jnp.take_along_axis(lse_s.reshape(cfg.n_hashes, padded), sorted_slot, axis=1)
  round_weights = jax.nn.softmax(lse_r, axis=0)       # (R, Lp)
  out = jnp.sum(round_weights[..., None] * out_r, axis=0)
  return dict(out=out, buckets=buckets, probs=probs, q_pos=q_pos, k_pos=k_pos,
              round_weights=round_weights)


def _one_round(q, keys, v, valid, chunk_of, cfg, order):
  """One hash round in sorted order: (out, lse, probs, q_pos, k_pos) per chunk."""
  c = cfg.chunk_len
  n_chunks = order.shape[0] // c
  q_pos = order.reshape(n_chunks, c)                    # original positions, sorted
  k_pos = _look_around(q_pos, cfg)                      # (n_chunks, W * c)
  k_vec, k_val, k_valid = (_look_around(t[q_pos], cfg) for t in (keys, v, valid))
  shifts = jnp.arange(-cfg.n_chunks_before, cfg.n_chunks_after + 1)
  neighbour = jnp.arange(n_chunks)[:, None] + shifts[None, :]
  in_range = jnp.repeat((neighbour >= 0) & (neighbour < n_chunks), c, axis=1)
  allowed = (k_valid & in_range)[:, None, :]
  if cfg.causal:
    allowed = allowed & (k_pos[:, None, :] <= q_pos[:, :, None])
  is_self = k_pos[:, None, :] == q_pos[:, :, None]
  count = None
  if cfg.n_hashes > 1:
    # N_ij: in how many rounds j's chunk lies in i's window.
    diff = chunk_of[:, k_pos][:, :, None, :] - chunk_of[:, q_pos][:, :, :, None]
    count = jnp.sum((diff >= -cfg.n_chunks_before) & (diff <= cfg.n_chunks_after), axis=0)
  logits = masked_logits(q[q_pos], k_vec, allowed, is_self, count)  # (n_chunks, c, W * c)
  lse = jax.nn.logsumexp(logits, axis=-1)
  probs = jnp.exp(logits - lse[..., None])
  out = jnp.einsum('nqk,nkd->nqd', probs.astype(v.dtype), k_val,
                   preferred_element_type=logits_dtype(v.dtype))
  return out, lse, probs, q_pos, k_pos


def _look_around(t, cfg):
  """(n_chunks, c, ...) -> (n_chunks, W * c, ...): each chunk's window of neighbours.

  Uses roll, so windows wrap around the ends; `_one_round` masks wrapped chunks.
  """
  parts = [jnp.roll(t, -s, axis=0) for s in range(-cfg.n_chunks_before, cfg.n_chunks_after + 1)]
  t = jnp.stack(parts, axis=1)
  return t.reshape((t.shape[0], t.shape[1] * t.shape[2]) + t.shape[3:])


def shared_qk_reference(q, v, valid=None, causal=False, allowed=None):
  """Dense exact shared-QK attention with the hard self rule: the oracle for LSH.

  Keys are `shared_qk_keys(q)`; query i attends, with softmax over q_i.k_j/sqrt(d), to
  every key j that is valid, (if causal) j <= i, and (if given) allowed[i, j]; itself
  only if that set has no j != i. O(L^2), float32, highest precision.

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
  logits = jnp.einsum('qd,kd->qk', q32, shared_qk_keys(q32),
                      precision=jax.lax.Precision.HIGHEST) / np.sqrt(q.shape[-1])
  probs = jax.nn.softmax(jnp.where(ok, logits, -1e30), axis=-1)
  probs = jnp.where(jnp.any(ok, axis=1, keepdims=True), probs, 0.0)
  return jnp.einsum('qk,kd->qd', probs, jnp.asarray(v, jnp.float32),
                    precision=jax.lax.Precision.HIGHEST)


__all__ = ['LSHConfig', 'MASKED', 'SELF_PENALTY', 'hash_buckets', 'lsh_attention',
           'lsh_attention_weights', 'masked_logits', 'shared_qk_reference']
