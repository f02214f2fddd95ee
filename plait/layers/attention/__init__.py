"""Attention: one `Attention` layer (base.py) around a per-head kind, one module per kind.

  >>> import plait.layers as tl
  >>> layer = tl.CausalAttention(d_model=512, n_heads=8)              # a layer constructor
  >>> layer = tl.Attention(tl.ChunkedKind(chunk_len=128), d_model=512)  # any kind

Kinds are named `...Kind`, layer constructors `...Attention` (see docs/attention.md).
The exact-attention oracles for tests live in `plait.layers.attention.reference`, and the
kinds' building blocks in their modules; neither is re-exported here.
"""
from plait.layers.attention.base import (
    Attention, AttentionKind, AttentionWeights, ProjectionWeights, RotaryState, large_negative,
    vmap_pairs)
from plait.layers.attention.block_sparse import (
    BlockSparseAttention, BlockSparseKind, CausalBlockSparseAttention)
from plait.layers.attention.dense import (
    CausalAttention, ChunkedCausalAttention, ChunkedKind, ChunkedSelfAttention, DotProductKind,
    SelfAttention)
from plait.layers.attention.favor import CausalFavorAttention, FavorAttention, FavorKind
from plait.layers.attention.lsh import LSHKind, LSHSelfAttention, lsh_buckets

__all__ = [
    # The layer and what a new kind needs.
    'Attention', 'AttentionKind', 'AttentionWeights', 'ProjectionWeights', 'RotaryState',
    'large_negative', 'vmap_pairs',
    # Kinds.
    'BlockSparseKind', 'ChunkedKind', 'DotProductKind', 'FavorKind', 'LSHKind',
    # Layer constructors.
    'BlockSparseAttention', 'CausalAttention', 'CausalBlockSparseAttention',
    'CausalFavorAttention', 'ChunkedCausalAttention', 'ChunkedSelfAttention', 'FavorAttention',
    'LSHSelfAttention', 'SelfAttention',
    # Inspection.
    'lsh_buckets',
]
