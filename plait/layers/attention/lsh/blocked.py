"""LSH rounds computed one block of query chunks at a time (bounded attention memory).

All rounds at once hold (n_hashes, n_chunks, chunk_len, W * chunk_len) logits,
probabilities and masks: at 2^20 tokens, 2 rounds and W = 2, 2 GiB per float32 array
per head. Here a round's sorted chunks are cut into blocks of `chunks_per_block`, and
`chunked_map` runs one (round, block) at a time; its backward pass recomputes a block's
attention instead of keeping it, so only one block's temporaries are ever alive.

Each block gets the sorted rows of its own chunks plus `n_chunks_before` chunks before
and `n_chunks_after` chunks after (a halo), gathered from the original arrays by
position; windows are then static slices. Keys are derived from the block's queries
inside the block (the shared-QK key of a row depends only on that row), so no key array
is materialised. The last block of a round is padded with wrapped-around chunks whose
outputs are dropped. The math per chunk is window.window_attention, the same
as the all-at-once path.
"""
import functools

import jax.numpy as jnp

from plait.layers.attention.lsh.hashing import shared_qk_keys
from plait.layers.attention.lsh.window import chunk_in_range, window_attention
from plait.layers.chunked_map import chunked_map


def blocked_rounds(q, v, valid, order, chunk_of, cfg, chunks_per_block):
  """Every round's outputs in sorted order, `chunks_per_block` query chunks at a time.

  Args:
    q: (Lp, d), v: (Lp, d_v), valid: (Lp,) bool, Lp a multiple of chunk_len.
    order: (R, Lp) sorted slot -> position; chunk_of: (R, Lp) position -> its chunk.
    cfg: LSHConfig; chunks_per_block: int >= 1.
  Returns:
    out (R, n_chunks, c, d_v) and lse (R, n_chunks, c), in at least float32.
  """
  n_rounds, c = cfg.n_hashes, cfg.chunk_len
  before, after = cfg.n_chunks_before, cfg.n_chunks_after
  n_chunks = order.shape[1] // c
  per_block = min(chunks_per_block, n_chunks)
  n_blocks = -(-n_chunks // per_block)
  # Chunks each block needs: its own plus the halo, wrapping around the ends of the round
  # like the all-at-once path's roll (wrapped chunks are masked; a query with no allowed
  # key then averages the same values as there).
  span = jnp.arange(n_blocks)[:, None] * per_block + jnp.arange(-before, per_block + after)
  span = span % n_chunks                                              # (n_blocks, S)
  pos = order.reshape(n_rounds, n_chunks, c)[:, span]                 # (R, n_blocks, S, c)
  pos = pos.reshape((n_rounds * n_blocks,) + pos.shape[2:])
  xs = dict(q=q[pos], v=v[pos], valid=valid[pos], pos=pos)
  if n_rounds > 1:
    xs['chunk_of'] = jnp.moveaxis(chunk_of[:, pos], 0, -1)          # (R * n_blocks, S, c, R)
  fn = functools.partial(_block, cfg, n_chunks, n_blocks, per_block)
  (out, lse), _ = chunked_map(fn, xs)
  out = out.reshape((n_rounds, n_blocks * per_block, c) + out.shape[3:])
  lse = lse.reshape(n_rounds, n_blocks * per_block, c)
  return out[:, :n_chunks], lse[:, :n_chunks]


def _block(cfg, n_chunks, n_blocks, per_block, params, consts, x, i):
  """One (round, block): chunked_map's fn. x holds the block's rows plus its halo."""
  del params, consts
  before = cfg.n_chunks_before
  window = functools.partial(_window, before=before, after=cfg.n_chunks_after, n=per_block)
  mine = lambda t: t[before:before + per_block]
  chunk_of = x.get('chunk_of')
  cq, ck = (None, None) if chunk_of is None else (mine(chunk_of), window(chunk_of))
  in_range = chunk_in_range((i % n_blocks) * per_block, per_block, cfg, n_chunks)
  out, lse, _ = window_attention(
      mine(x['q']), window(shared_qk_keys(x['q'], cfg.normalize_keys)), window(x['v']),
      window(x['valid']),
      in_range, mine(x['pos']), window(x['pos']), cq, ck, cfg)
  return (out, lse), ()


def _window(t, before, after, n):
  """(before + n + after, c, ...) -> (n, W * c, ...): row i holds chunks i..i+W-1 of t."""
  parts = [t[before + s:before + s + n] for s in range(-before, after + 1)]
  t = jnp.stack(parts, axis=1)
  return t.reshape((n, t.shape[1] * t.shape[2]) + t.shape[3:])


__all__ = ['blocked_rounds']
