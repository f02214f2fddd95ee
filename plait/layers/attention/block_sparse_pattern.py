"""The block layout of BigBird ITC attention: which key blocks each query block sees.

The sequence is cut into `n_blocks` blocks of `block_size` positions. Bidirectional
(BigBird ITC):
  - global blocks: the first and last block see every block, and every block sees them;
  - sliding window: block i sees blocks i - 1, i, i + 1;
  - random: block i also sees `num_rand_blocks` other blocks, never a window or global one.
Causal (for language models): block i sees blocks i - 1 and i (positions only up to its
own), the first block, and `num_rand_blocks` random blocks among 1 .. i - 2.

Random blocks are a deterministic function of (seed, row) -- plus n_blocks when
bidirectional -- drawn with numpy at trace time (shapes are static). A row with fewer
candidates than `num_rand_blocks` takes all of them, so a sequence too short for the
pattern gets full (or full causal) attention. The causal layout of a row does not depend
on n_blocks, so the pattern of a prefix is the prefix of the pattern: decoding one token
at a time sees exactly what the full-sequence computation sees.

  >>> mask = block_sparse_mask(length=512, block_size=64, num_rand_blocks=2, seed=0)
  >>> mask.shape, mask.dtype   # ((512, 512), dtype('bool')): True = query may see key
"""
import functools
from typing import NamedTuple

import numpy as np


class BlockPattern(NamedTuple):
  """Per query block, the key blocks it sees, as fixed-width slots (static numpy arrays).

  key_blocks: (n_blocks, width) int, a key block index per slot (0 in unused slots).
  valid: (n_blocks, width) bool, False for unused slots (no such block, a duplicate of an
    earlier slot, or fewer random candidates than slots).
  global_rows: query blocks that see every block (their slots are not used).
  """
  key_blocks: np.ndarray
  valid: np.ndarray
  global_rows: tuple


def n_blocks_for(length, block_size):
  """Blocks needed to hold `length` positions (the last one padded if need be)."""
  return -(-length // block_size)


def min_blocks(num_rand_blocks, causal):
  """Blocks a sequence needs for the sparse pattern (fewer: use dense attention).

  Bidirectional: 2 global + 3 window + random; causal: first + 2 window + random.
  """
  return (3 if causal else 5) + num_rand_blocks


def window_width(num_rand_blocks, causal):
  """Slots per query block: window, global and random blocks."""
  return (3 if causal else 5) + num_rand_blocks


@functools.lru_cache(maxsize=256)
def block_pattern(n_blocks, num_rand_blocks, seed, causal):
  """The `BlockPattern` of n_blocks blocks (cached; arrays are read-only)."""
  _check_args(n_blocks, num_rand_blocks, seed)
  width = window_width(num_rand_blocks, causal)
  key_blocks = np.zeros((n_blocks, width), np.int32)
  valid = np.zeros((n_blocks, width), bool)
  global_rows = () if causal else tuple(sorted({0, n_blocks - 1}))
  for row in range(n_blocks):
    if row in global_rows:
      continue
    if causal:
      fixed = [row - 1, row, 0]
      candidates = np.arange(1, row - 1)
      rng = np.random.default_rng([seed, row])
    else:
      fixed = [row - 1, row, row + 1, 0, n_blocks - 1]
      candidates = np.array([b for b in range(1, n_blocks - 1) if abs(b - row) > 1], np.int64)
      rng = np.random.default_rng([seed, n_blocks, row])
    n_rand = min(num_rand_blocks, len(candidates))
    chosen = np.sort(rng.choice(candidates, n_rand, replace=False)) if n_rand else []
    seen = set()
    for slot, block in enumerate(list(fixed) + list(chosen)):
      if 0 <= block < n_blocks and block not in seen:
        key_blocks[row, slot], valid[row, slot] = block, True
        seen.add(block)
  key_blocks.setflags(write=False)
  valid.setflags(write=False)
  return BlockPattern(key_blocks, valid, global_rows)


def block_level_mask(pattern):
  """(n_blocks, n_blocks) bool: query block i sees key block j."""
  n_blocks = pattern.key_blocks.shape[0]
  mask = np.zeros((n_blocks, n_blocks), bool)
  rows = np.repeat(np.arange(n_blocks), pattern.key_blocks.shape[1])
  keep = pattern.valid.ravel()
  mask[rows[keep], pattern.key_blocks.ravel()[keep]] = True
  mask[list(pattern.global_rows)] = True
  return mask


def block_sparse_mask(length, block_size, num_rand_blocks=3, seed=0, causal=False):
  """The (length, length) bool mask of the pattern (True = query may see key).

  Block-sparse attention equals dense attention under this mask (for any length; when
  `length` is not a multiple of `block_size`, the last block is a partial one). Meant for
  tests and plots: it is quadratic in length, the attention itself never builds it.
  """
  if length < 1 or block_size < 1:
    raise ValueError(f'block_sparse_mask: need length >= 1 and block_size >= 1, got '
                     f'length={length}, block_size={block_size}.')
  n_blocks = n_blocks_for(length, block_size)
  blocks = block_level_mask(block_pattern(n_blocks, num_rand_blocks, seed, causal))
  mask = np.repeat(np.repeat(blocks, block_size, axis=0), block_size, axis=1)
  mask = mask[:length, :length]
  if causal:
    mask &= np.tri(length, dtype=bool)
  return mask


def _check_args(n_blocks, num_rand_blocks, seed):
  if n_blocks < 1:
    raise ValueError(f'block_pattern: need n_blocks >= 1, got {n_blocks}.')
  if num_rand_blocks < 0:
    raise ValueError(f'block_pattern: num_rand_blocks must be >= 0, got {num_rand_blocks}.')
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f'block_pattern: seed must be a non-negative int, got {seed!r}.')


__all__ = ['block_sparse_mask']
