"""LSHConfig: the hyperparameters every part of LSH attention reads, validated by LSHKind."""
import dataclasses

from plait.layers.attention.lsh.hashing import total_buckets

# Blocks of the default chunks_per_block='auto' hold at most this many logits (128 MiB
# in float32); smaller inputs take the all-at-once path.
AUTO_BLOCK_LOGITS = 2 ** 25


@dataclasses.dataclass(frozen=True)
class LSHConfig:
  """Hyperparameters of LSH attention (validated by LSHKind)."""
  n_hashes: int
  factors: tuple        # bucket-count factors, from hashing.check_n_buckets.
  chunk_len: int
  n_chunks_before: int
  n_chunks_after: int
  causal: bool
  chunks_per_block: object = 'auto'   # None, 'auto' or int >= 1: see resolve_block.
  normalize_keys: bool = True          # keys: unit-RMS queries (True) or the queries.

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


__all__ = ['AUTO_BLOCK_LOGITS', 'LSHConfig']
