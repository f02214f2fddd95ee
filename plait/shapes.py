"""Shape/dtype signatures: what a layer needs to know to build its weights.

>>> signature(np.zeros((2, 3), np.float32))
ShapeDtype{shape:(2, 3), dtype:float32}
"""
import jax
import numpy as np


class ShapeDtype:
  """An immutable, hashable (shape, dtype) pair; usable wherever jax wants a ShapeDtypeStruct."""

  __slots__ = ('shape', 'dtype')

  def __init__(self, shape, dtype=np.float32):
    object.__setattr__(self, 'shape', tuple(int(d) for d in shape))
    object.__setattr__(self, 'dtype', np.dtype(dtype))

  def __setattr__(self, name, value):
    raise AttributeError('ShapeDtype is immutable')

  def __eq__(self, other):
    return (isinstance(other, ShapeDtype) and self.shape == other.shape
            and self.dtype == other.dtype)

  def __hash__(self):
    return hash((self.shape, self.dtype))

  def __repr__(self):
    return f'ShapeDtype{{shape:{self.shape}, dtype:{self.dtype}}}'

  @property
  def ndim(self):
    return len(self.shape)

  def as_struct(self):
    return jax.ShapeDtypeStruct(self.shape, self.dtype)


def signature(obj):
  """Returns the ShapeDtype (or tuple of them) of an array or tuple/list of arrays."""
  if isinstance(obj, (list, tuple)):
    return tuple(signature(x) for x in obj)
  if isinstance(obj, ShapeDtype):
    return obj
  return ShapeDtype(np.shape(obj), getattr(obj, 'dtype', np.asarray(obj).dtype))


def to_structs(sig):
  """ShapeDtype pytree -> jax.ShapeDtypeStruct pytree (for jax.eval_shape)."""
  if isinstance(sig, (list, tuple)):
    return tuple(to_structs(s) for s in sig)
  if isinstance(sig, ShapeDtype):
    return sig.as_struct()
  return jax.ShapeDtypeStruct(sig.shape, sig.dtype)


def from_structs(tree):
  """jax.ShapeDtypeStruct (or array) pytree -> ShapeDtype pytree."""
  if isinstance(tree, (list, tuple)):
    return tuple(from_structs(s) for s in tree)
  return ShapeDtype(tree.shape, tree.dtype)


def describe(x):
  """Short text of the shapes of a value or stack of values, for error messages."""
  if isinstance(x, (list, tuple)):
    return '(' + ', '.join(describe(v) for v in x) + ')'
  shape = getattr(x, 'shape', None)
  dtype = getattr(x, 'dtype', None)
  if shape is None:
    return type(x).__name__
  return f'{dtype}{list(shape)}'
