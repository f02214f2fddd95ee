"""Predict-mode (decoding) LSH attention: a cache that replays chunking on every prefix.

What it computes. Causal LSH over a whole sequence is not strictly causal in what it
reads: which earlier tokens share token i's chunk depends on the sorted order, and
every LATER token whose bucket is lower shifts i's sorted slot. So a decoder that has
seen only tokens 0..t cannot reproduce the whole-sequence result at t in general.
Predict mode therefore defines the output at position t as the output at the LAST
position of eval-mode causal LSH run on the prefix x[0..t] (same fixed rotations):

  predict(x)[t] == eval(x[:t + 1])[t]        (up to float rounding)

for every prompt position and every decoded token. This is exactly what slow decoding
(re-run the layer on the growing prefix, keep the last output) produces for one LSH
layer, and it is split-invariant: a prompt at once, token by token, or any mix give
the same outputs, so "fast == slow" holds for a whole model when the slow decoder
re-runs the model in predict mode from a fresh cache on each prefix. (Re-running a
multi-layer model in EVAL mode instead differs at earlier positions, whose eval outputs
depend on later tokens; see kind.py.)

How. For the prefix ending at t, key j's slot in the (bucket, position) sort is
  #(prefix tokens in a lower bucket) + #(earlier tokens in j's bucket) = below_t[b_j] + rank_j,
and rank_j never changes once j is cached. The cache keeps per round a histogram of
buckets, each key's bucket and rank, so every step finds each cached key's chunk in
O(max_len) and attends over the cache with the window mask (dense masked attention on
the cache: O(max_len) per token, like a KV cache). Multi-round combination uses the
union form (softmax over every key some round's window holds, each counted once),
which the duplicate correction makes equal to the chunked computation.
"""
import jax
import jax.numpy as jnp

from plait.layers.attention.lsh.hashing import hash_buckets, shared_qk_keys
from plait.layers.attention.lsh.window import logits_dtype, masked_logits


def init_cache(max_len, d_head, dtype, cfg):
  """Per-(batch, head) cache (keys, values, buckets, ranks, histogram, valid, index).

  keys/values: (max_len, d_head); buckets, ranks: (n_hashes, max_len) int32;
  histogram: (n_hashes, n_buckets + 1) int32 counts (last bin: padding tokens);
  valid: (max_len,) bool; index: () int32, the next position.
  """
  r = cfg.n_hashes
  return (jnp.zeros((max_len, d_head), dtype), jnp.zeros((max_len, d_head), dtype),
          jnp.zeros((r, max_len), jnp.int32), jnp.zeros((r, max_len), jnp.int32),
          jnp.zeros((r, cfg.n_buckets + 1), jnp.int32), jnp.zeros((max_len,), jnp.bool_),
          jnp.zeros((), jnp.int32))


def cached_lsh_attention(q, v, mask, cache, rotations, cfg):
  """Appends L_new tokens to the cache and returns their outputs (see module doc).

  Args:
    q: (L_new, d) queries of the newest positions; v: (L_new, d_v).
    mask: (L_new,) bool validity of the new tokens, or None (all valid).
    cache: as from init_cache.
    rotations: the fixed (d, n_hashes, columns) rotations.
    cfg: LSHConfig (causal).
  Returns:
    (out (L_new, d_v), new_cache). Memory O(n_hashes * L_new * max_len). Past the
    cache's end the output is NaN, so an overflow is loud.
  """
  keys_c, values_c, buckets_c, ranks_c, hist, valid_c, index = cache
  n_new, max_len = q.shape[0], keys_c.shape[0]
  new_valid = jnp.ones((n_new,), jnp.bool_) if mask is None else mask.astype(jnp.bool_)
  b_new = hash_buckets(q, new_valid, rotations, cfg)                 # (R, n_new)
  one_hot = jax.nn.one_hot(b_new, cfg.n_buckets + 1, dtype=jnp.int32)  # (R, n_new, nb+1)
  prefix_hist = hist[:, None, :] + jnp.cumsum(one_hot, axis=1)       # through token n
  rank_new = jnp.sum((prefix_hist - one_hot) * one_hot, axis=-1)     # earlier, same bucket
  put = lambda buf, new, axis: jax.lax.dynamic_update_slice_in_dim(
      buf, new.astype(buf.dtype), index, axis=axis)
  keys_c = put(keys_c, shared_qk_keys(q, cfg.normalize_keys), 0)
  values_c = put(values_c, v, 0)
  buckets_c = put(buckets_c, b_new, 1)
  ranks_c = put(ranks_c, rank_new, 1)
  valid_c = put(valid_c, new_valid, 0)
  # Slot of every cached key in the sort of the prefix ending at each new token.
  below = jnp.cumsum(prefix_hist, axis=-1) - prefix_hist            # tokens in lower buckets
  gather = jnp.broadcast_to(buckets_c[:, None, :], (cfg.n_hashes, n_new, max_len))
  k_slot = jnp.take_along_axis(below, gather, axis=-1) + ranks_c[:, None, :]
  q_slot = jnp.take_along_axis(below, b_new[..., None], axis=-1)[..., 0] + rank_new
  diff = k_slot // cfg.chunk_len - (q_slot // cfg.chunk_len)[..., None]
  count = jnp.sum((diff >= -cfg.n_chunks_before) & (diff <= cfg.n_chunks_after), axis=0)
  q_pos = (index + jnp.arange(n_new))[:, None]
  k_pos = jnp.arange(max_len)[None, :]
  allowed = (count > 0) & valid_c[None, :] & (k_pos <= q_pos)
  # One softmax over the union of windows: each key once, so no duplicate correction.
  logits = masked_logits(q, keys_c, allowed, k_pos == q_pos)
  probs = jax.nn.softmax(logits, axis=-1)
  out = jnp.einsum('qk,kd->qd', probs.astype(values_c.dtype), values_c,
                   preferred_element_type=logits_dtype(values_c.dtype)).astype(q.dtype)
  out = jnp.where(index + n_new <= max_len, out, jnp.nan)
  new_hist = prefix_hist[:, -1, :]
  return out, (keys_c, values_c, buckets_c, ranks_c, new_hist, valid_c, index + n_new)


__all__ = ['cached_lsh_attention', 'init_cache']
