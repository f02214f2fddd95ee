"""LSH rounds on the fused sparse-attention kernel (`sparse_kernel.py`): the GPU path.

After the same hash-and-sort as chunked.py (`sort_rounds`), each round's sorted sequence
is a banded block-sparse problem: sorted chunk i attends to chunks i - n_chunks_before ..
i + n_chunks_after that exist. The kernel runs it with chunks cut into blocks of
`kernel_block(chunk_len)` positions and the masks of window.py computed in the kernel
from small vectors: original positions as q_pos/k_pos (causal; padding keys get -1),
SELF_PENALTY on the self logit, and -log(count) with count from every round's chunk
ids (window_count's duplicate correction; it depends on the (query, key) pair, not on
the key alone, so the kernel computes it per pair; a pair's own round always counts, as
its band holds it, so the kernel compares only the other rounds: `rounds_folded`). Nothing
is copied in sorted order: the kernels read each block's rows of q, v and the key scale
through the round's sort order (`sparse_attention(rows=...)`) and write the outputs, the
log-sum-exps and the gradients back to the rows' own positions, so the rounds combine by
their log-sum-exp (`weigh_rounds`) with no permutation, as the XLA path does after its
own. The keys are never made: the kernel reads the queries as keys and scales each key's
scores by `shared_qk_scale` (one float32 per position). Rounds are folded into the head
axis (one launch for all; a head's rounds read its q and v: `head_fold`). Queries that see
no key (only padding can) output 0 here, the mean of their window's values there: both
unspecified (LSHKind's contract).

  >>> s = vmap_pairs(...)  # sort_rounds per (batch, head) pair, leading (B, H) axes
  >>> out = fused_rounds(q, v, s, cfg)          # q, v (B, H, L, d) -> (B, H, L, d)
"""
import functools

import jax.numpy as jnp

from plait.layers.attention import sparse_kernel
from plait.layers.attention.block_plan import block_plan
from plait.layers.attention.lsh.chunked import weigh_rounds
from plait.layers.attention.lsh.hashing import shared_qk_scale
from plait.layers.attention.lsh.window import SELF_PENALTY

KERNEL_BLOCKS = (64, 32, 16)  # Kernel block sizes tried, largest first (64: see attention.md).


def kernel_block(chunk_len):
  """Positions per kernel block: the largest of KERNEL_BLOCKS dividing chunk_len, or None."""
  return next((b for b in KERNEL_BLOCKS if chunk_len % b == 0), None)


@functools.lru_cache(maxsize=64)
def banded_plan(n_chunks, per_chunk, before, after):
  """The `BlockPlan`: block b (of chunk b // per_chunk) lists the blocks of its window.

    >>> banded_plan(3, 2, 1, 0).fwd.counts   # array([2, 2, 4, 4, 4, 4])
  """
  lists = []
  for block in range(n_chunks * per_chunk):
    chunk = block // per_chunk
    first, last = max(0, chunk - before), min(n_chunks - 1, chunk + after)
    lists.append(list(range(first * per_chunk, (last + 1) * per_chunk)))
  return block_plan(lists, (before + 1 + after) * per_chunk)


def fused_rounds(q, v, s, cfg, interpret=False):
  """All rounds of LSH attention through the kernel, combined.

  Args:
    q, v: (B, H, L, d) queries (keys are derived from them) and values.
    s: `sort_rounds`' dict with leading (B, H) axes (valid (B, H, Lp), order, chunk_of and
      sorted_slot (B, H, R, Lp)).
    cfg: LSHConfig; interpret: run the kernel through the Pallas interpreter.
  Returns:
    (B, H, L, d) in q's dtype.
  """
  batch, heads, length, d = q.shape
  n_rounds, c = cfg.n_hashes, cfg.chunk_len
  order = s['order']
  padded = order.shape[-1]
  block = kernel_block(c)
  if block is None:
    raise ValueError(f'LSH kernel: chunk_len={c} must be a multiple of one of '
                     f'{KERNEL_BLOCKS}.')
  pad = lambda t: jnp.pad(t, ((0, 0), (0, 0), (0, padded - length), (0, 0)))
  key_scale = pad(shared_qk_scale(q, cfg.normalize_keys)[..., None])[..., 0]  # (B, H, Lp)
  q, v = pad(q), pad(v)
  fold = lambda t: t.reshape((batch, heads * n_rounds, padded) + t.shape[4:])
  pos = fold(order).astype(jnp.int32)     # (B, H * R, Lp): slot -> position, per round
  valid = fold(jnp.take_along_axis(s['valid'][:, :, None], order, axis=3))
  # Slot j of round r is position order[r, j]; its chunk in round r2 is chunk_of[r2, that].
  ids = () if n_rounds == 1 else tuple(
      fold(jnp.take_along_axis(s['chunk_of'][:, :, r2, None], order, axis=3))
      for r2 in range(n_rounds))
  plan = banded_plan(padded // c, c // block, cfg.n_chunks_before, cfg.n_chunks_after)
  # Outputs and log-sum-exps come back at the positions (not in sorted order), per round.
  out, lse = sparse_kernel.sparse_attention(
      q, None, v, pos, jnp.where(valid, pos, -1), plan, causal=cfg.causal,
      interpret=interpret, return_lse=True, self_penalty=SELF_PENALTY, chunk_ids=ids,
      window=(cfg.n_chunks_before, cfg.n_chunks_after), key_scale=key_scale,
      rounds_folded=n_rounds > 1, rows=pos, head_fold=n_rounds)
  unfold = lambda t: t.reshape((batch, heads, n_rounds, padded) + t.shape[3:])
  out, _ = weigh_rounds(unfold(out), unfold(lse))   # bf16 outputs weighted in float32
  return out[:, :, :length].astype(q.dtype)


__all__ = ['banded_plan', 'fused_rounds', 'kernel_block']
