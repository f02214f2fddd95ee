"""Layers and combinators: `import plait.layers as tl`."""
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
from plait.layers.reversible import *  # pylint: disable=wildcard-import
from plait.layers.attention import *  # pylint: disable=wildcard-import
