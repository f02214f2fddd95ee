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
(finite). All rounds at once take O(n_hashes * L * (1 + n_before + n_after) * chunk_len)
memory; with `cfg.chunks_per_block` (default 'auto': when that exceeds
AUTO_BLOCK_LOGITS), lsh_blocked.py computes one block of query chunks at a time and
recomputes it in the backward pass, with the same per-chunk math (lsh_window.py).
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.attention.lsh_blocked import blocked_rounds
from plait.layers.attention.lsh_hashing import hash_vectors, shared_qk_keys, total_buckets
from plait.layers.attention.lsh_window import (MASKED, SELF_PENALTY, chunk_in_range,
                                               logits_dtype, masked_logits, window_attention)

# Blocks of the default chunks_per_block='auto' hold at most this many logits (128 MiB
# in float32); smaller inputs take the all-at-once path.
AUTO_BLOCK_LOGITS = 2 ** 25


@dataclasses.dataclass(frozen=True)
class LSHConfig:
  """Hyperparameters of LSH attention (validated by LSHAttention)."""
  n_hashes: int
  factors: tuple        # bucket-count factors, from lsh_hashing.check_n_buckets.
  chunk_len: int
  n_chunks_before: int
  n_chunks_after: int
  causal: bool
  chunks_per_block: object = 'auto'   # None, 'auto' or int >= 1: see resolve_block.

  @property
  def n_buckets(self):
    return total_buckets(self.factors)

  @property
  def window_chunks(self):
    return self.n_chunks_before + 1 + self.n_chunks_after

  def resolve_block(self, n_chunks):
    """Query chunks per block for a round of n_chunks, or None for all rounds at once.

    chunks_per_block None: all at once; an int: blocks of that many chunks (even if one
    block holds everything); 'auto': blocks of at most AUTO_BLOCK_LOGITS logits, or all
    at once when every round fits in one such block.
    """
    if self.chunks_per_block != 'auto':
      return self.chunks_per_block
    per_block = max(1, AUTO_BLOCK_LOGITS // (self.chunk_len ** 2 * self.window_chunks))
    return None if self.n_hashes * n_chunks <= per_block else per_block


def hash_buckets(q, valid, rotations, cfg):
  """(n_hashes, L) bucket ids; invalid positions get the extra bucket n_buckets."""
  buckets = hash_vectors(q, rotations, cfg.factors)
  return jnp.where(valid[None, :], buckets, cfg.n_buckets)


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
  cfg = dataclasses.replace(cfg, chunks_per_block=None)  # the path that keeps probs
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
  per_block = cfg.resolve_block(n_chunks)
  if per_block is None:
    one_round = functools.partial(_one_round, q, shared_qk_keys(q), v, valid, chunk_of, cfg)
    out_s, lse_s, probs, q_pos, k_pos = jax.vmap(one_round)(order)
  else:  # Internals are not kept: lsh_attention_weights uses the path above.
    out_s, lse_s = blocked_rounds(q, v, valid, order, chunk_of, cfg, per_block)
    probs = q_pos = k_pos = None
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
  in_range = chunk_in_range(0, n_chunks, cfg, n_chunks)
  cq = ck = None
  if cfg.n_hashes > 1:
    cq, ck = (jnp.moveaxis(chunk_of[:, p], 0, -1) for p in (q_pos, k_pos))  # (..., R)
  out, lse, probs = window_attention(q[q_pos], k_vec, k_val, k_valid, in_range, q_pos, k_pos,
                                     cq, ck, cfg)
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
