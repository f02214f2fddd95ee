"""Readable paths of the leaves of a model's weights, state and optimizer state.

A leaf's path starts with the model's name, then names each sublayer on the way as
`name[i]` (its index in its parent), then the leaf layer's own keys: NamedTuple field
names (`kernel`, `bias`), tuple indices and dict keys. Checkpoints store their arrays
as nested dicts keyed by these parts, and errors name leaves by the joined path:

  >>> model = tl.Serial(tl.Dense(16), tl.Relu(), tl.Dense(4))
  >>> weights, _ = model.init(ShapeDtype((2, 8)))
  >>> leaf_names(model, weights)
  ['Serial/Dense_16[0]/kernel', 'Serial/Dense_16[0]/bias',
   'Serial/Dense_4[2]/kernel', 'Serial/Dense_4[2]/bias']
  >>> named_tree(model, weights)['Serial']['Dense_4[2]']['kernel'].shape
  (16, 4)
"""
import jax

__all__ = ['leaf_paths', 'leaf_names', 'opt_state_paths', 'named_tree', 'nest', 'pick']


def _key_part(key):
  """The name (GetAttrKey), index (SequenceKey) or key (DictKey, FlattenedIndexKey)."""
  for attr in ('name', 'idx', 'key'):
    if hasattr(key, attr):
      return getattr(key, attr)
  return key


def _layer_path(model, key_path):
  node, parts = model, [model.name] if model is not None else []
  for key in key_path:
    part = _key_part(key)
    if (node is not None and isinstance(key, jax.tree_util.SequenceKey)
        and part < len(node.sublayers)):
      node = node.sublayers[part]
      parts.append(f'{node.name}[{part}]')
    else:
      node = None
      parts.append(str(part))
  return tuple(parts)


def leaf_paths(model, tree):
  """Each leaf's path in `tree` (weights or state of `model`), in flatten order.

  A path is a tuple of strings: ('Serial', 'Dense_16[2]', 'kernel').
  """
  return [_layer_path(model, path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def leaf_names(model, tree):
  """'Serial/Dense_16[2]/kernel' for each leaf of `tree` (weights or state), in flatten order."""
  return ['/'.join(path) for path in leaf_paths(model, tree)]


def opt_state_paths(model, weights, opt_state):
  """Paths of the optimizer state's leaves, in flatten order.

  Parts of the state shaped like the weights (e.g. Adam's `mu`) are named as the
  weights are: ('0', 'mu', 'Serial', 'Dense_16[2]', 'kernel'); the rest by their keys
  in the optimizer's tree: ('0', 'count').
  """
  weights_def = jax.tree_util.tree_structure(weights)
  def like_weights(x):
    return jax.tree_util.tree_structure(x) == weights_def
  paths = []
  for path, sub in jax.tree_util.tree_flatten_with_path(opt_state, is_leaf=like_weights)[0]:
    prefix = tuple(str(_key_part(k)) for k in path)
    if like_weights(sub):
      paths.extend(prefix + p for p in leaf_paths(model, sub))
    else:
      paths.append(prefix)
  return paths


def nest(paths, leaves):
  """Nested dicts {part: {part: leaf}} holding each leaf at its path.

  Raises ValueError if two leaves have the same path.
  """
  root = {}
  for path, leaf in zip(paths, leaves):
    node = root
    for part in path[:-1]:
      node = node.setdefault(part, {})
    if not path or path[-1] in node:
      raise ValueError(f'two leaves have the path {"/".join(path)!r}.')
    node[path[-1]] = leaf
  return root


def pick(nested, path):
  """The leaf at `path` in nested dicts made by `nest`."""
  for part in path:
    nested = nested[part]
  return nested


def named_tree(model, tree):
  """`tree` (weights or state of `model`) as nested dicts keyed by path parts.

  {'Serial': {'Dense_16[0]': {'kernel': ..., 'bias': ...}, ...}}, as checkpoints store it.
  """
  return nest(leaf_paths(model, tree), jax.tree_util.tree_leaves(tree))
