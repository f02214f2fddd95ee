"""Leaf paths read like the model: `Serial/Dense_16[2]/kernel`."""
import jax
import numpy as np

import plait.layers as tl
from plait.shapes import ShapeDtype
from plait.supervised import optimizers, weight_paths


def _mlp():
  return tl.Serial(tl.Dense(16), tl.Relu(), tl.Dense(4), tl.LayerNorm())


def test_leaf_names_are_layer_names_indices_and_fields():
  model = _mlp()
  weights, _ = model.init(ShapeDtype((2, 8)))
  assert weight_paths.leaf_names(model, weights) == [
      'Serial/Dense_16[0]/kernel', 'Serial/Dense_16[0]/bias',
      'Serial/Dense_4[2]/kernel', 'Serial/Dense_4[2]/bias',
      'Serial/LayerNorm[3]/scale', 'Serial/LayerNorm[3]/bias']


def test_nested_layers_and_tuple_fields_are_named_along_the_way():
  model = tl.Serial(tl.Embedding(10, 6), tl.Residual(tl.Dense(6)),
                    tl.AxialPositionalEncoding(shape=(2, 4), d_embs=(2, 4)))
  weights, _ = model.init(ShapeDtype((1, 8), np.int32))
  names = weight_paths.leaf_names(model, weights)
  assert names[0] == 'Serial/Embedding_10_6[0]/embedding'
  assert any(n.startswith('Serial/Residual[1]/') and n.endswith('/Dense_6[0]/kernel')
             for n in names), names
  assert names[-2:] == ['Serial/AxialPositionalEncoding_2x4[2]/tables/0',
                        'Serial/AxialPositionalEncoding_2x4[2]/tables/1']


def test_named_tree_holds_each_weight_at_its_path():
  model = _mlp()
  weights, _ = model.init(ShapeDtype((2, 8)))
  tree = weight_paths.named_tree(model, weights)
  assert set(tree['Serial']) == {'Dense_16[0]', 'Dense_4[2]', 'LayerNorm[3]'}
  assert tree['Serial']['Dense_4[2]']['kernel'] is weights[2].kernel


def test_optimizer_state_shaped_like_the_weights_is_named_like_them():
  model = _mlp()
  weights, _ = model.init(ShapeDtype((2, 8)))
  opt_state = optimizers.Adam().init(weights)
  paths = weight_paths.opt_state_paths(model, weights, opt_state)
  assert len(paths) == len(jax.tree_util.tree_leaves(opt_state))
  names = ['/'.join(p) for p in paths]
  assert '0/count' in names
  assert '0/mu/Serial/Dense_4[2]/kernel' in names and '0/nu/Serial/LayerNorm[3]/bias' in names
