"""LSH self-attention (Reformer): the kind, its layer and the algorithm, one idea per module.

  kind.py     LSHKind (rotations, modes), the LSHSelfAttention layer and lsh_buckets.
  config.py   LSHConfig, the hyperparameters every other module reads.
  hashing.py  random rotations, bucket ids and the shared-QK keys.
  window.py   one round's chunks attending to their windows (the per-chunk math).
  chunked.py  all rounds of one (batch, head) pair in train/eval mode.
  blocked.py  the same rounds one block of query chunks at a time (bounded memory).
  fused.py    the same rounds on the fused GPU kernel (sparse_kernel.py; implementation=).
  decode.py   predict mode: a cache that replays the chunking on every prefix.

  >>> layer = LSHSelfAttention(d_model=256, n_heads=4, n_hashes=2, chunk_len=64, causal=True)
"""
from plait.layers.attention.lsh.kind import LSHKind, LSHSelfAttention, lsh_buckets

__all__ = ['LSHKind', 'LSHSelfAttention', 'lsh_buckets']
