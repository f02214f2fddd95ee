"""Layers and combinators: `import plait.layers as tl`.

Every public name is listed in `__all__` below (gin registers the layers among them);
building blocks and test oracles stay in their modules, e.g.
`plait.layers.attention.reference` and `plait.layers.chunked_map`.
"""
from plait.shapes import ShapeDtype, signature
from plait.layers.base import Fn, Layer, LayerError, PureLayer, count_params, summary
from plait.layers.combinators import (
    Add, Branch, Chunk, Concatenate, Cond, Drop, Dup, Parallel, Residual, Scan, Select, Serial,
    Swap, serial_arity)
from plait.layers.core import (
    Dense, DenseWeights, Dropout, Embedding, EmbeddingWeights, FastGelu, Flatten, Gelu,
    LogSoftmax, Mean, Relu, ShiftRight, Sigmoid, Softmax, Tanh)
from plait.layers.normalization import LayerNorm, LayerNormWeights, RMSNorm, RMSNormWeights
from plait.layers.positional import (
    AxialPositionalEncoding, AxialPositionalWeights, PositionalEncoding,
    PositionalEncodingWeights)
from plait.layers.metrics import (
    Accuracy, CrossEntropyLoss, L2Loss, SequenceAccuracy, WeightedCategoryCrossEntropy)
from plait.layers.reversible import (
    ReversibleHalfResidual, ReversibleLayer, ReversibleSelect, ReversibleSerial, ReversibleSwap)
from plait.layers.attention import (
    Attention, AttentionKind, AttentionWeights, BlockSparseAttention, BlockSparseKind, CausalAttention,
    CausalBlockSparseAttention, CausalFavorAttention, ChunkedCausalAttention, ChunkedKind,
    ChunkedSelfAttention, DotProductKind, FavorAttention, FavorKind, LSHKind, LSHSelfAttention,
    ProjectionWeights, RotaryState, SelfAttention, large_negative, vmap_pairs)

__all__ = [
    # The contract and shapes.
    'Layer', 'PureLayer', 'Fn', 'LayerError', 'ShapeDtype', 'signature', 'count_params',
    'summary',
    # Combinators.
    'Serial', 'Branch', 'Parallel', 'Residual', 'Select', 'Dup', 'Drop', 'Swap', 'Add',
    'Concatenate', 'Scan', 'Chunk', 'Cond', 'serial_arity',
    # Core layers and their weights.
    'Dense', 'DenseWeights', 'Embedding', 'EmbeddingWeights', 'Dropout', 'Flatten', 'Mean',
    'ShiftRight', 'LogSoftmax', 'Softmax', 'Relu', 'Gelu', 'FastGelu', 'Sigmoid', 'Tanh',
    'LayerNorm', 'LayerNormWeights', 'RMSNorm', 'RMSNormWeights',
    'PositionalEncoding', 'PositionalEncodingWeights', 'AxialPositionalEncoding',
    'AxialPositionalWeights',
    # Losses and metrics.
    'CrossEntropyLoss', 'WeightedCategoryCrossEntropy', 'Accuracy', 'SequenceAccuracy', 'L2Loss',
    # Reversible layers.
    'ReversibleLayer', 'ReversibleSelect', 'ReversibleSwap', 'ReversibleHalfResidual',
    'ReversibleSerial',
    # Attention: the layer, the kind contract, kinds, layer constructors.
    'Attention', 'AttentionKind', 'AttentionWeights', 'ProjectionWeights', 'RotaryState',
    'large_negative', 'vmap_pairs', 'BlockSparseKind', 'ChunkedKind', 'DotProductKind',
    'FavorKind', 'LSHKind',
    'BlockSparseAttention', 'CausalAttention', 'CausalBlockSparseAttention',
    'CausalFavorAttention', 'ChunkedCausalAttention', 'ChunkedSelfAttention', 'FavorAttention',
    'LSHSelfAttention', 'SelfAttention',
]
