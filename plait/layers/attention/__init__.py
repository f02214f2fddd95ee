"""Attention family: one shared batching path (base.py), one file per kind.

Each kind's module lists its public names in `__all__`; they are re-exported here.
"""
from plait.layers.attention.base import *  # noqa: F401,F403
from plait.layers.attention.reference import *  # noqa: F401,F403
from plait.layers.attention.dense import *  # noqa: F401,F403
from plait.layers.attention.lsh import *  # noqa: F401,F403
from plait.layers.attention.favor import *  # noqa: F401,F403
from plait.layers.attention.block_sparse import *  # noqa: F401,F403
from plait.layers.attention import base, block_sparse, dense, favor, lsh, reference

__all__ = (base.__all__ + reference.__all__ + dense.__all__ + lsh.__all__ + favor.__all__
           + block_sparse.__all__)
