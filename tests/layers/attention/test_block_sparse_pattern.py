"""The BigBird ITC layout: global, window and random blocks, causal prefixes, determinism."""
import numpy as np
import pytest

from plait.layers.attention.block_sparse_pattern import block_pattern, block_sparse_mask, min_blocks


def block_view(mask, block_size, causal):
  """(n_blocks, n_blocks) bool from a position mask: the last query of each block's row."""
  first = block_size - 1 if causal else 0
  return mask[first::block_size, ::block_size]


@pytest.mark.parametrize('n_blocks,r,seed', [(12, 3, 0), (9, 2, 7), (8, 3, 1), (10, 0, 2)])
def test_bidirectional_rows_see_globals_window_and_r_random_blocks(n_blocks, r, seed):
  bs = 4
  mask = block_sparse_mask(n_blocks * bs, bs, r, seed)
  blocks = block_view(mask, bs, False)
  # Every position of a block pair has the same value (it is a block pattern).
  np.testing.assert_array_equal(np.repeat(np.repeat(blocks, bs, 0), bs, 1), mask)
  assert blocks[0].all() and blocks[-1].all()          # global rows see everything
  assert blocks[:, 0].all() and blocks[:, -1].all()    # everyone sees the global blocks
  last = n_blocks - 1
  for i in range(1, last):
    window = {j for j in (i - 1, i, i + 1)}
    seen = set(np.flatnonzero(blocks[i]))
    assert window | {0, last} <= seen
    assert len(seen - window - {0, last}) == r, (i, seen)
    assert blocks[i].sum() == (4 if i in (1, last - 1) else 5) + r


@pytest.mark.parametrize('n_blocks,r,seed', [(12, 3, 0), (9, 1, 5), (6, 2, 3)])
def test_causal_rows_see_first_block_window_and_earlier_random_blocks(n_blocks, r, seed):
  bs = 3
  length = n_blocks * bs
  mask = block_sparse_mask(length, bs, r, seed, causal=True)
  np.testing.assert_array_equal(mask, np.tril(mask))  # never looks ahead
  blocks = block_view(mask, bs, True)
  for i in range(n_blocks):
    seen = set(np.flatnonzero(blocks[i]))
    fixed = {0, i} | ({i - 1} if i else set())
    assert fixed <= seen and max(seen) == i
    assert len(seen - fixed) == min(r, max(i - 2, 0)), (i, seen)
  # Within the diagonal block a query sees itself and earlier positions only.
  for q in range(length):
    block_start = q // bs * bs
    np.testing.assert_array_equal(mask[q, block_start:block_start + bs],
                                  np.arange(bs) <= q - block_start)


def test_causal_pattern_of_a_prefix_is_the_prefix_of_the_pattern():
  long = block_sparse_mask(96, 4, 2, seed=3, causal=True)
  for length in (40, 41, 57):
    np.testing.assert_array_equal(block_sparse_mask(length, 4, 2, seed=3, causal=True),
                                  long[:length, :length])


@pytest.mark.parametrize('causal', [False, True])
def test_partial_last_block_is_the_crop_of_the_padded_pattern(causal):
  padded = block_sparse_mask(40, 5, 2, seed=1, causal=causal)
  np.testing.assert_array_equal(block_sparse_mask(37, 5, 2, seed=1, causal=causal),
                                padded[:37, :37])


@pytest.mark.parametrize('causal', [False, True])
def test_pattern_is_a_deterministic_function_of_the_seed(causal):
  a = block_sparse_mask(64, 4, 3, seed=11, causal=causal)
  np.testing.assert_array_equal(a, block_sparse_mask(64, 4, 3, seed=11, causal=causal))
  assert (a != block_sparse_mask(64, 4, 3, seed=12, causal=causal)).any()


@pytest.mark.parametrize('causal', [False, True])
def test_sequences_shorter_than_the_pattern_get_full_attention(causal):
  r, bs = 2, 3
  length = (min_blocks(r, causal) - 1) * bs
  full = np.ones((length, length), bool)
  expected = np.tril(full) if causal else full
  np.testing.assert_array_equal(block_sparse_mask(length, bs, r, seed=4, causal=causal), expected)


def test_pattern_slots_never_repeat_a_block():
  pattern = block_pattern(15, 4, 9, False)
  for row in range(1, 14):
    used = pattern.key_blocks[row][pattern.valid[row]]
    assert len(set(used)) == len(used)


def test_bad_pattern_arguments_are_errors():
  with pytest.raises(ValueError, match='seed must be a non-negative int'):
    block_sparse_mask(32, 4, 2, seed=-1)
  with pytest.raises(ValueError, match='block_size >= 1'):
    block_sparse_mask(32, 0, 2)
