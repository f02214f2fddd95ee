"""Block-sparse attention (BigBird ITC) as an AttentionKind, plus its Layer constructors.

Each query block sees a fixed-width set of key blocks (window, global, random; the layout
is in `block_sparse_pattern.py`). The kind gathers those key blocks next to each query
block and runs one dense (block_size, width * block_size) softmax per block, so memory is
O(L * width * block_size) and no (L, L) array is ever built. The two global query blocks
(bidirectional) attend to the whole sequence: a (2 * block_size, L) product.

  >>> layer = BlockSparseAttention(d_model=512, n_heads=8, block_size=64, num_rand_blocks=3)
  >>> lm_layer = CausalBlockSparseAttention(512, 8, block_size=64, mode='predict', max_len=4096)

Design choices:
  - All heads share one random pattern, a deterministic function of `seed` and the number
    of blocks (BigBird draws one per head). `attend` sees one (batch, head) pair without
    its head index, and the shared path may run heads in groups (`head_chunk_size`), so a
    per-head pattern could not be applied consistently. Give each layer its own seed
    (e.g. its depth) to vary the pattern across layers.
  - Lengths are padded to a multiple of `block_size`; padded keys are masked and padded
    queries dropped, so the output equals dense attention under `block_sparse_mask`.
  - A sequence shorter than the pattern needs (`min_blocks`: 5 + num_rand_blocks blocks,
    or 3 + num_rand_blocks when causal) raises a ValueError, unless `dense_fallback=True`:
    then it runs dense attention under the same mask, which for such short sequences is
    full (causal) attention.
  - Predict mode (causal only) keeps a KV cache of `max_len` positions (rounded up to
    whole blocks) and lets each new position see its pattern row: exactly what the
    full-sequence computation sees (the causal pattern of a prefix is the prefix of the
    pattern). One-token steps gather just that row's (3 + num_rand_blocks) key blocks
    from the cache; a multi-token prompt is attended densely over the cache under the
    pattern mask (O(prompt * max_len), like dense prefill).
  - On GPU (bf16/fp16) training and eval run the fused Pallas kernel of
    `sparse_kernel.py` over the same pattern (`implementation=`; see BlockSparseKind and
    docs/attention.md); the XLA path above stays the portable path and the tests' oracle.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.attention import sparse_kernel
from plait.layers.attention.base import Attention, AttentionKind, kernel_implementation
from plait.layers.attention.block_plan import block_plan
from plait.layers.attention.block_sparse_pattern import (
    block_level_mask, block_pattern, block_sparse_mask, min_blocks, n_blocks_for,
    window_width)
from plait.layers.attention.dense import cached_attention, init_kv_cache, masked_attention

IMPLEMENTATIONS = (None, 'auto', 'xla', 'pallas', 'interpret')


class BlockSparseKind(AttentionKind):
  """BigBird ITC attention for (B, H, L, d_head) q/k/v; see the module docstring.

  Args:
    block_size: positions per block.
    num_rand_blocks: random key blocks per query block.
    seed: non-negative int fixing the random blocks.
    causal: the LM variant (window + first block + random earlier blocks, no look-ahead).
    dense_fallback: for sequences too short for the pattern, use dense attention (with the
      equivalent, full pattern) instead of raising.
    implementation: None/'auto' runs the fused Pallas kernel (`sparse_kernel.py`) on GPU
      for bf16/fp16 inputs whose block and head sizes it takes, XLA otherwise; 'xla'
      forces XLA (the portable path and the oracle); 'pallas' forces the kernel and
      raises when it can't run; 'interpret' runs the kernel through the Pallas
      interpreter (any backend, slow: for tests). Predict mode and dense_fallback always
      use XLA.
  """

  def __init__(self, block_size=64, num_rand_blocks=3, seed=0, causal=False,
               dense_fallback=False, implementation=None):
    if implementation not in IMPLEMENTATIONS:
      raise ValueError(f'BlockSparseKind: implementation must be one of {IMPLEMENTATIONS}, '
                       f'got {implementation!r}.')
    self.implementation = implementation
    if block_size < 1 or num_rand_blocks < 0:
      raise ValueError(f'BlockSparseKind: need block_size >= 1 and num_rand_blocks >= 0, got '
                       f'block_size={block_size}, num_rand_blocks={num_rand_blocks}.')
    if not isinstance(seed, (int, np.integer)) or seed < 0:
      raise ValueError(f'BlockSparseKind: seed must be a non-negative int, got {seed!r}.')
    self.block_size, self.num_rand_blocks, self.seed = block_size, num_rand_blocks, int(seed)
    self.causal, self.dense_fallback = causal, dense_fallback
    self.name = f'{"Causal" if causal else ""}BlockSparse{block_size}'

  @property
  def min_length(self):
    """Shortest length computed block-sparsely (the last of min_blocks blocks may be partial)."""
    return (min_blocks(self.num_rand_blocks, self.causal) - 1) * self.block_size + 1

  def mask(self, length):
    """The (length, length) bool mask this kind equals dense attention under."""
    return block_sparse_mask(length, self.block_size, self.num_rand_blocks, self.seed,
                             self.causal)

  def init_state(self, batch_size, n_heads, length, d_head, dtype, mode):
    """Predict mode: a KV cache of `length` (max_len) rounded up to whole blocks."""
    if mode != 'predict':
      return ()
    return init_kv_cache(n_blocks_for(length, self.block_size) * self.block_size, d_head, dtype)

  def check_length(self, length, mode):
    if mode == 'predict':
      if not self.causal:
        raise ValueError(f'{self.name}: predict mode (decoding) needs the causal variant; '
                         'use CausalBlockSparseAttention.')
      return
    n_min = min_blocks(self.num_rand_blocks, self.causal)
    if n_blocks_for(length, self.block_size) < n_min and not self.dense_fallback:
      raise ValueError(
          f'{self.name}: sequence length {length} is too short for block-sparse attention '
          f'with block_size={self.block_size} and num_rand_blocks={self.num_rand_blocks}: '
          f'it needs at least {n_min} blocks, i.e. length > {(n_min - 1) * self.block_size}'
          f' (padded to a multiple of block_size). Use longer sequences, a smaller '
          'block_size or num_rand_blocks, or dense_fallback=True to run dense attention.')

  def attend_batched(self, q, k, v, mask, state, rng, mode):
    """(B, H, L, d_head) arrays, mask (B, L) or None; rng unused (the pattern is fixed)."""
    del rng
    length = q.shape[-2]
    self.check_length(length, mode)
    if mode == 'predict':
      return self._predict(q, k, v, mask, state)
    valid = jnp.ones((q.shape[0], 1, length), jnp.bool_) if mask is None else mask[:, None]
    n_blocks = n_blocks_for(length, self.block_size)
    if n_blocks < min_blocks(self.num_rand_blocks, self.causal):  # dense_fallback=True.
      allowed = jnp.asarray(self.mask(length)) & valid[..., None, :]
      return masked_attention(q, k, v, allowed), state
    impl = self.pick_implementation(q)
    if impl != 'xla':
      return self._kernel(q, k, v, valid, n_blocks, impl == 'interpret'), state
    return self._blockwise(q, k, v, valid, n_blocks), state

  def pick_implementation(self, q):
    """'xla', 'pallas' or 'interpret' for these (B, H, L, d_head) queries (see the class)."""
    return kernel_implementation(
        self.name, self.implementation, q.dtype,
        sparse_kernel.supported(self.block_size, q.shape[-1], q.dtype),
        f'block_size in (16, 32, 64, 128), 16 <= d_head <= 128 and float inputs; got block_size='
        f'{self.block_size}, d_head={q.shape[-1]}, dtype={q.dtype}')

  def _kernel(self, q, k, v, valid, n_blocks, interpret):
    """The fused kernel over the pattern's blocks; padded keys get position -1."""
    length = q.shape[-2]
    pad = n_blocks * self.block_size - length
    pad_len = lambda t: jnp.pad(t, [(0, 0), (0, 0), (0, pad)] + [(0, 0)] * (t.ndim - 3))
    q, k, v, valid = (pad_len(t) for t in (q, k, v, valid))
    positions = jnp.arange(n_blocks * self.block_size, dtype=jnp.int32)
    k_pos = jnp.where(valid, positions, -1)                            # (B, 1, L_padded)
    plan = kernel_plan(n_blocks, self.num_rand_blocks, self.seed, self.causal)
    # Sequence-major kernels: q, k, v are transposes of the projections' (B, L, H, d), so
    # XLA cancels the kernel's transposes against them.
    out = sparse_kernel.sparse_attention(q, k, v, positions[None, None], k_pos, plan,
                                         causal=self.causal, interpret=interpret,
                                         sequence_major=True)
    return out[:, :, :length]

  def _blockwise(self, q, k, v, valid, n_blocks):
    """Pads to n_blocks * block_size, attends block by block, strips the padding."""
    bs, length = self.block_size, q.shape[-2]
    pattern = block_pattern(n_blocks, self.num_rand_blocks, self.seed, self.causal)
    pad = n_blocks * bs - length
    pad_len = lambda t: jnp.pad(t, [(0, 0), (0, 0), (0, pad)] + [(0, 0)] * (t.ndim - 3))
    q, k, v, valid = (pad_len(t) for t in (q, k, v, valid))
    to_blocks = lambda t: t.reshape(t.shape[:2] + (n_blocks, bs) + t.shape[3:])
    global_rows = np.array(pattern.global_rows, np.int32)
    rows = np.array([r for r in range(n_blocks) if r not in pattern.global_rows], np.int32)

    # Sparse rows: gather each row's key blocks into (rows, width * bs) keys.
    idx = pattern.key_blocks[rows]                                      # (R, W)
    gather = lambda t: _merge_slots(jnp.take(to_blocks(t), idx, axis=2))
    k_rows, v_rows, valid_rows = gather(k), gather(v), gather(valid)  # (B, H|1, R, W*bs, ...)
    slot_ok = np.repeat(pattern.valid[rows], bs, axis=1)               # (R, W*bs)
    allowed = valid_rows[..., None, :] & slot_ok[:, None, :]          # (B, 1, R, 1|bs, W*bs)
    if self.causal:
      k_pos = (jnp.asarray(idx)[:, :, None] * bs + jnp.arange(bs)).reshape(len(rows), -1)
      q_pos = jnp.asarray(rows)[:, None] * bs + jnp.arange(bs)        # (R, bs)
      allowed = allowed & (k_pos[:, None, :] <= q_pos[:, :, None])
    q_rows = jnp.take(to_blocks(q), rows, axis=2)                      # (B, H, R, bs, d)
    out = masked_attention(q_rows, k_rows, v_rows, allowed)
    if len(global_rows):
      # Global rows see every key: (G * bs, L_padded) logits.
      q_glob = jnp.take(to_blocks(q), global_rows, axis=2)             # (B, H, G, bs, d)
      glob = masked_attention(q_glob, k[:, :, None], v[:, :, None], valid[:, :, None, None, :])
      out = jnp.concatenate([out, glob], axis=2)
      order = np.argsort(np.concatenate([rows, global_rows]))
      out = jnp.take(out, order, axis=2)
    out = out.reshape(out.shape[:2] + (n_blocks * bs,) + out.shape[4:])
    return out[:, :, :length]

  def _predict(self, q, k, v, mask, cache):
    """Causal decoding against the KV cache; the new positions see their pattern rows."""
    if q.shape[-2] == 1:
      return self._decode_one(q, k, v, mask, cache)
    # A prompt: dense over the cache, masked by the pattern (O(prompt * cache) like dense).
    bs = self.block_size
    table = jnp.asarray(block_level_mask(self._cache_pattern(cache)))
    def allowed(q_pos, k_pos):
      return table[q_pos // bs, k_pos // bs] & (k_pos <= q_pos)
    mask = None if mask is None else mask[:, None, :]
    return cached_attention(q, k, v, mask, cache, allowed)

  def _decode_one(self, q, k, v, mask, cache):
    """One new position: appends it and gathers only its row's key blocks from the cache."""
    k_cache, v_cache, valid, index = cache
    bs, cache_len = self.block_size, k_cache.shape[-2]
    n_blocks = cache_len // bs
    pos = jnp.ravel(index)[0]  # Every pair is at the same position.
    _check_room(pos, cache_len)
    new_valid = (jnp.ones(q.shape[:-1], jnp.bool_) if mask is None
                 else jnp.broadcast_to(mask[:, None, :], q.shape[:-1]))
    k_cache = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), (0, 0, pos, 0))
    v_cache = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), (0, 0, pos, 0))
    valid = jax.lax.dynamic_update_slice(valid, new_valid, (0, 0, pos))
    pattern = self._cache_pattern(cache)
    row = jnp.minimum(pos // bs, n_blocks - 1)
    blocks = jnp.asarray(pattern.key_blocks)[row]                       # (W,)
    k_pos = (blocks[:, None] * bs + jnp.arange(bs)).reshape(-1)         # (W * bs,)
    slot_ok = jnp.repeat(jnp.asarray(pattern.valid)[row], bs)
    to_blocks = lambda t: t.reshape(t.shape[:2] + (n_blocks, bs) + t.shape[3:])
    gather = lambda t: _merge_slots(jnp.take(to_blocks(t), blocks[None], axis=2))[:, :, 0]
    allowed = slot_ok & (k_pos <= pos) & gather(valid)                   # (B, H, W * bs)
    out = masked_attention(q, gather(k_cache).astype(q.dtype), gather(v_cache).astype(q.dtype),
                           allowed[:, :, None, :])
    out = jnp.where(pos < cache_len, out, jnp.nan)  # Past the end under jit: loud NaN.
    return out, (k_cache, v_cache, valid, index + 1)

  def _cache_pattern(self, cache):
    n_blocks = n_blocks_for(cache[0].shape[-2], self.block_size)
    return block_pattern(n_blocks, self.num_rand_blocks, self.seed, True)


def kernel_lists(n_blocks, num_rand_blocks, seed, causal):
  """Per query block, the key blocks `sparse_kernel` computes (global rows list every block)."""
  pattern = block_pattern(n_blocks, num_rand_blocks, seed, causal)
  return [range(n_blocks) if row in pattern.global_rows
          else pattern.key_blocks[row][pattern.valid[row]] for row in range(n_blocks)]


@functools.lru_cache(maxsize=64)
def kernel_plan(n_blocks, num_rand_blocks, seed, causal):
  """The `BlockPlan` of the pattern for `sparse_kernel`.

  Forward rows hold a query block's slots (`window_width`); backward rows twice that: the
  random blocks make the transposed lists uneven (at 64K, bidirectional, 355 of 1,024 key
  blocks see more than 8 query blocks, none but the 2 global ones more than 16), and every
  split block's parts are combined after the kernel; with 2x the kernels' fwd+bwd measured
  21-27 % faster at 64K on an H100, the layer 11-16 % (benchmarks/RESULTS.md section 37).
  """
  width = window_width(num_rand_blocks, causal)
  return block_plan(kernel_lists(n_blocks, num_rand_blocks, seed, causal), width,
                    bwd_width=2 * width)


def _check_room(pos, cache_len):
  try:
    pos = int(pos)
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError):
    return  # Traced: the NaN guard is all we can do.
  if pos >= cache_len:
    raise ValueError(f'KV cache is full: {pos} positions cached + 1 new > {cache_len}; build '
                     'the layer with a larger max_len.')


def _merge_slots(t):
  """(B, H, R, W, bs, ...) -> (B, H, R, W * bs, ...)."""
  return t.reshape(t.shape[:3] + (t.shape[3] * t.shape[4],) + t.shape[5:])


# ----- layers -----
def BlockSparseAttention(d_model, n_heads=8, block_size=64, num_rand_blocks=3, seed=0,  # pylint: disable=invalid-name
                         d_head=None, use_mask=False, dropout=0.0, dense_fallback=False,
                         head_chunk_size=None, use_bias=True, implementation=None,
                         mode='train', rotary=False):
  """Bidirectional BigBird ITC attention (an encoder's): (B, L, d_model) -> (B, L, d_model).

  Global first/last blocks, a 3-block window and `num_rand_blocks` random blocks drawn
  from `seed`. Lengths need not be block multiples (padded automatically); sequences
  shorter than (5 + num_rand_blocks) blocks raise unless `dense_fallback=True`.
  `implementation`: None (auto: the Pallas kernel on GPU where it applies), 'xla',
  'pallas' or 'interpret' (see `BlockSparseKind`).

    >>> layer = BlockSparseAttention(256, n_heads=4, block_size=32, num_rand_blocks=2)
    >>> weights, state = layer.init(ShapeDtype((2, 1000, 256)))
  """
  kind = BlockSparseKind(block_size, num_rand_blocks, seed, causal=False,
                         dense_fallback=dense_fallback, implementation=implementation)
  return Attention(kind, d_model, n_heads=n_heads, d_head=d_head, dropout=dropout,
                   use_mask=use_mask, head_chunk_size=head_chunk_size, use_bias=use_bias,
                   rotary=rotary, mode=mode, name='BlockSparseAttention')


def CausalBlockSparseAttention(d_model, n_heads=8, block_size=64, num_rand_blocks=3, seed=0,  # pylint: disable=invalid-name
                               d_head=None, use_mask=False, dropout=0.0, dense_fallback=False,
                               head_chunk_size=None, max_len=2048, use_bias=True,
                               implementation=None, mode='train', rotary=False):
  """Causal block-sparse attention for LMs: window + first block + random earlier blocks.

  Never looks ahead. Sequences shorter than (3 + num_rand_blocks) blocks raise unless
  `dense_fallback=True`. Predict mode decodes with a `max_len` KV cache and sees exactly
  the full-sequence pattern. `implementation` as for `BlockSparseAttention`.

    >>> layer = CausalBlockSparseAttention(256, n_heads=4, block_size=32, mode='predict')
  """
  kind = BlockSparseKind(block_size, num_rand_blocks, seed, causal=True,
                         dense_fallback=dense_fallback, implementation=implementation)
  return Attention(kind, d_model, n_heads=n_heads, d_head=d_head, dropout=dropout,
                   use_mask=use_mask, head_chunk_size=head_chunk_size, max_len=max_len,
                   use_bias=use_bias, rotary=rotary, mode=mode, name='CausalBlockSparseAttention')


__all__ = ['BlockSparseAttention', 'BlockSparseKind', 'CausalBlockSparseAttention']
