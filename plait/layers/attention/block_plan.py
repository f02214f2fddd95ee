"""Work lists for `sparse_kernel`: which key blocks each query block sees, cut into balanced rows.

A sparse attention pattern is given as one list of key blocks per query block. The kernels
run one program per *work row*: a query block and at most `width` of its key blocks.
Longer lists (BigBird's global rows see every block) are cut into several work rows whose
partial results are combined afterwards (by log-sum-exp for the output, by sums for
gradients), so no program runs much longer than the others. The backward pass for keys
needs the transposed lists (per key block, the query blocks that see it), cut the same way,
into rows of `bwd_width` (default `width`): transposed lists of a random pattern are
uneven, and a wider backward row splits fewer of them, so fewer parts are combined.

  >>> plan = block_plan([[0, 1], [0, 1, 2], [1, 2]], width=2)
  >>> plan.fwd.owner       # array([0, 1, 2, 1]): query block 1 got two work rows (1 and 3)
  >>> plan.bwd.owner       # per key block: array([0, 1, 2, 1])
  >>> block_plan([[0, 1], [0, 1, 2], [1, 2]], width=2, bwd_width=3).bwd.owner  # [0, 1, 2]

Everything here is static numpy, built once per pattern at trace time.
"""
from typing import NamedTuple

import numpy as np

__all__ = ['BlockPlan', 'WorkRows', 'block_plan']


class WorkRows(NamedTuple):
  """Lists cut into work rows (all int32 numpy).

  owner: (R,) the block each work row belongs to (query block forward, key block backward).
  table: (R * width,) the other side's blocks per row, row-major; unused slots hold 0.
  counts: (R,) used slots per row (0 for a block with an empty list).
  Work row b < n_blocks is block b's first (often only) part.
  extra: (E,) the other work rows of split blocks; extra_owner: (E,) their blocks.
  """
  owner: np.ndarray
  table: np.ndarray
  counts: np.ndarray
  extra: np.ndarray
  extra_owner: np.ndarray


class BlockPlan:
  """Forward (per query block) and backward (per key block) work rows of one pattern.

  width / bwd_width: most blocks in one forward / backward work row.
  Compared and hashed by identity: build it once per pattern (e.g. under an lru_cache).
  """

  def __init__(self, fwd, bwd, n_blocks, width, bwd_width):
    self.fwd, self.bwd, self.n_blocks = fwd, bwd, n_blocks
    self.width, self.bwd_width = width, bwd_width

  @property
  def computed_blocks(self):
    """(query block, key block) pairs computed: the work a forward pass does."""
    return int(self.fwd.counts.sum())

  def __repr__(self):
    return (f'BlockPlan(n_blocks={self.n_blocks}, width={self.width}, '
            f'bwd_width={self.bwd_width}, pairs={self.computed_blocks})')


def block_plan(key_lists, width, bwd_width=None):
  """The `BlockPlan` of per-query-block key block lists.

  Args:
    key_lists: n_blocks sequences of distinct key block indices in [0, n_blocks).
    width: most key blocks one forward work row handles (>= 1).
    bwd_width: most query blocks one backward work row handles (>= 1); None: width.
  """
  n_blocks = len(key_lists)
  bwd_width = width if bwd_width is None else bwd_width
  if width < 1 or bwd_width < 1:
    raise ValueError(f'block_plan: width and bwd_width must be >= 1, got {width} and '
                     f'{bwd_width}.')
  transposed = [[] for _ in range(n_blocks)]
  for row, keys in enumerate(key_lists):
    keys = [int(c) for c in keys]
    if len(set(keys)) != len(keys) or any(not 0 <= c < n_blocks for c in keys):
      raise ValueError(f'block_plan: query block {row} lists key blocks {keys}; need '
                       f'distinct blocks in [0, {n_blocks}).')
    for c in keys:
      transposed[c].append(row)
  return BlockPlan(_work_rows(key_lists, width), _work_rows(transposed, bwd_width), n_blocks,
                   width, bwd_width)


def _work_rows(lists, width):
  """Work row b is block b's first part (so per-block results are a slice); extras follow."""
  owner, table, counts, extra, extra_owner = [], [], [], [], []
  def add(block, part):
    owner.append(block)
    counts.append(len(part))
    table.extend(part + [0] * (width - len(part)))
  lists = [[int(c) for c in items] for items in lists]
  for block, items in enumerate(lists):
    add(block, items[:width])
  for block, items in enumerate(lists):
    for start in range(width, len(items), width):
      extra.append(len(owner))
      extra_owner.append(block)
      add(block, items[start:start + width])
  as_int = lambda a: np.asarray(a, np.int32)
  return WorkRows(as_int(owner), as_int(table), as_int(counts), as_int(extra),
                  as_int(extra_owner))
