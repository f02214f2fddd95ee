"""The Reformer LSH attention algorithm for one (batch, head) pair (train and eval mode).

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
config.AUTO_BLOCK_LOGITS), blocked.py computes one block of query chunks at a time and
recomputes it in the backward pass, with the same per-chunk math (window.py). The dense
oracle is `plait.layers.attention.reference.shared_qk_reference`.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp

from plait.layers.attention.lsh.blocked import blocked_rounds
from plait.layers.attention.lsh.hashing import hash_buckets, shared_qk_keys
from plait.layers.attention.lsh.window import chunk_in_range, window_attention

def lsh_attention(q, v, valid, rotations, cfg, buckets=None):
  """LSH self-attention of one (batch, head) pair.

  Args:
    q: (L, d) queries (not pre-scaled); keys are derived from them.
    v: (L, d_v) values.
    valid: (L,) bool, True = real token.
    rotations: (d, n_hashes, columns) from hashing.random_rotations.
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


def sort_rounds(q, valid, rotations, cfg, buckets=None):
  """Pads to whole chunks, hashes (or replays `buckets`) and sorts every round.

  Args: as `lsh_attention` (q (L, d), valid (L,) bool).
  Returns a dict: valid (Lp,) bool padded with False, Lp = L rounded up to chunk_len;
    buckets (R, Lp) int32 (padding: n_buckets); order (R, Lp) sorted slot -> position;
    sorted_slot (R, Lp) position -> sorted slot; chunk_of (R, Lp) position -> its chunk.
  """
  c = cfg.chunk_len
  length = q.shape[0]
  padded = -(-length // c) * c
  pad = padded - length
  q = jnp.pad(q, ((0, pad), (0, 0)))
  valid = jnp.pad(valid.astype(jnp.bool_), (0, pad))
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
  return dict(valid=valid, buckets=buckets, order=order, sorted_slot=sorted_slot,
              chunk_of=sorted_slot // c)


@jax.custom_vjp
def permute_rows(t, index, inverse):
  """t (..., L, d) with rows reordered along axis -2: out[..., i, :] = t[..., index[..., i], :].

  index (..., L) is a permutation and inverse its inverse; the gradient is the gather by
  `inverse` (a permutation's transpose), not the scatter-add XLA would emit. A permutation
  is in bounds, so the gather is promised so (no clamps or fill selects around it).
  """
  return jnp.take_along_axis(t, index[..., None], axis=-2, mode='promise_in_bounds',
                             wrap_negative_indices=False)


def _permute_rows_fwd(t, index, inverse):
  return permute_rows(t, index, inverse), (index, inverse)


def _permute_rows_bwd(residuals, g):
  index, inverse = residuals
  return permute_rows(g, inverse, index), None, None


permute_rows.defvjp(_permute_rows_fwd, _permute_rows_bwd)


def combine_rounds(out_s, lse_s, order, sorted_slot):
  """Rounds' outputs in sorted order -> the combined output in original order.

  out_s (..., R, Lp, d_v) (bf16 is promoted to lse_s's float32 in the weighted sum), lse_s
  (..., R, Lp) float32; order and sorted_slot (..., R, Lp) as from `sort_rounds`. Each
  round's output is weighted by softmax over rounds of its log-sum-exp. Returns (out (..., Lp,
  d_v), round_weights (..., R, Lp)).
  """
  # Position p of round r sits at sorted slot sorted_slot[r, p].
  out_r = permute_rows(out_s, sorted_slot, order)
  lse_r = permute_rows(lse_s[..., None], sorted_slot, order)[..., 0]
  return weigh_rounds(out_r, lse_r)


def weigh_rounds(out_r, lse_r):
  """Rounds' outputs in original order, (..., R, Lp, d_v), and their log-sum-exps (..., R,
  Lp) float32 -> (out (..., Lp, d_v), round_weights (..., R, Lp)): each round weighted by
  the softmax over rounds of its log-sum-exp (bf16 outputs promoted to float32)."""
  round_weights = jax.nn.softmax(lse_r, axis=-2)
  return jnp.sum(round_weights[..., None] * out_r, axis=-3), round_weights


def _lsh_rounds(q, v, valid, rotations, cfg, buckets=None):
  """All rounds; returns a dict of the combined output and per-round internals."""
  c = cfg.chunk_len
  length = q.shape[0]
  n_chunks = -(-length // c)
  padded = n_chunks * c
  s = sort_rounds(q, valid, rotations, cfg, buckets)
  q, v = (jnp.pad(t, ((0, padded - length), (0, 0))) for t in (q, v))
  valid, buckets, order, chunk_of = s['valid'], s['buckets'], s['order'], s['chunk_of']
  per_block = cfg.resolve_block(n_chunks)
  if per_block is None:
    one_round = functools.partial(_one_round, q, shared_qk_keys(q, cfg.normalize_keys), v, valid,
                                  chunk_of, cfg)
    out_s, lse_s, probs, q_pos, k_pos = jax.vmap(one_round)(order)
  else:  # Internals are not kept: lsh_attention_weights uses the path above.
    out_s, lse_s = blocked_rounds(q, v, valid, order, chunk_of, cfg, per_block)
    probs = q_pos = k_pos = None
  out, round_weights = combine_rounds(out_s.reshape(cfg.n_hashes, padded, -1),
                                      lse_s.reshape(cfg.n_hashes, padded), order,
                                      s['sorted_slot'])
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


__all__ = ['combine_rounds', 'lsh_attention', 'lsh_attention_weights', 'permute_rows',
           'sort_rounds', 'weigh_rounds']
