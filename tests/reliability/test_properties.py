"""Hypothesis properties over random small stacks of layers and combinators.

* output_signature equals the signature of the actual outputs;
* jit(pure_fn) equals eager pure_fn;
* Serial(a, Serial(b, c)) equals Serial(a, b, c) with the weights mapped between nestings;
* ReversibleSerial: reverse(forward(x)) recovers x.
"""
import jax
import numpy as np
from hypothesis import given, settings, strategies as st

import plait.layers as tl
from plait import shapes
from tests.conftest import random_array

D = 4  # feature width: every layer in the pool maps (..., D) -> (..., D)
SETTINGS = settings(max_examples=15, deadline=None, derandomize=True, database=None)

LEAVES = {
    'Dense': lambda: tl.Dense(D),
    'Relu': tl.Relu,
    'LayerNorm': tl.LayerNorm,
    'Dropout(eval)': lambda: tl.Dropout(0.4, mode='eval'),
    'Tanh': tl.Tanh,
}


def _build(recipe):
  """A layer from a recipe: a leaf name, or (combinator, [sub-recipes])."""
  if isinstance(recipe, str):
    return LEAVES[recipe]()
  kind, subs = recipe
  layers = [_build(r) for r in subs]
  if kind == 'Serial':
    return tl.Serial(*layers)
  if kind == 'Residual':
    return tl.Residual(*layers)
  if kind == 'BranchAdd':
    return tl.Serial(tl.Branch(tl.Serial(*layers), tl.Dense(D)), tl.Add())
  return tl.Chunk(tl.Serial(*layers), chunk_size=2)  # 'Chunk'


RECIPES = st.recursive(
    st.sampled_from(sorted(LEAVES)),
    lambda inner: st.tuples(st.sampled_from(['Serial', 'Residual', 'BranchAdd', 'Chunk']),
                            st.lists(inner, min_size=1, max_size=3)),
    max_leaves=6)
BATCH = st.integers(1, 5)


def _run(layer, batch, seed):
  x = random_array((batch, D), seed)
  weights, state = layer.init(shapes.signature(x), jax.random.key(seed))
  return x, weights, state


@SETTINGS
@given(RECIPES, BATCH, st.integers(0, 1000))
def test_output_signature_matches_outputs(recipe, batch, seed):
  layer = _build(recipe)
  x, weights, state = _run(layer, batch, seed)
  y, _ = layer.pure_fn(x, weights, state, jax.random.key(1))
  assert layer.output_signature(shapes.signature(x)) == shapes.signature(y)


@SETTINGS
@given(RECIPES, BATCH, st.integers(0, 1000))
def test_jit_equals_eager(recipe, batch, seed):
  layer = _build(recipe)
  x, weights, state = _run(layer, batch, seed)
  eager, _ = layer.pure_fn(x, weights, state, jax.random.key(1))
  jitted, _ = jax.jit(layer.pure_fn)(x, weights, state, jax.random.key(1))
  np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-5)


@SETTINGS
@given(RECIPES, RECIPES, RECIPES, BATCH, st.integers(0, 1000))
def test_nested_serial_equals_flat_serial(a, b, c, batch, seed):
  flat = tl.Serial(_build(a), _build(b), _build(c))
  x, weights, state = _run(flat, batch, seed)
  nested = tl.Serial(flat.sublayers[0], tl.Serial(*flat.sublayers[1:]))
  def nest(tree):
    return (tree[0], (tree[1], tree[2]))
  want, want_state = flat.pure_fn(x, weights, state, None)
  got, got_state = nested.pure_fn(x, nest(weights), nest(state), None)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  assert jax.tree_util.tree_structure(got_state) == jax.tree_util.tree_structure(
      nest(want_state))
  # And the nested layer's own init has the same structure as the mapped weights.
  assert jax.tree_util.tree_structure(nested.init(shapes.signature(x))[0]) == \
      jax.tree_util.tree_structure(nest(weights))


@SETTINGS
@given(st.lists(st.lists(st.sampled_from(sorted(LEAVES)), min_size=1, max_size=3),
                min_size=1, max_size=4), BATCH, st.integers(0, 1000))
def test_reversible_reverse_inverts_forward(blocks, batch, seed):
  # Dropout in train mode: reverse must replay the forward's masks from the same rng.
  pool = dict(LEAVES, **{'Dropout(eval)': lambda: tl.Dropout(0.4, mode='train')})
  layers = []
  for block in blocks:
    layers += [tl.ReversibleHalfResidual(*[pool[n]() for n in block]), tl.ReversibleSwap()]
  model = tl.ReversibleSerial(*layers)
  x = (random_array((batch, D), seed), random_array((batch, D), seed + 1))
  weights, state = model.init(shapes.signature(x), jax.random.key(seed))
  rng = jax.random.key(2)
  y, new_state = model.pure_fn(x, weights, state, rng)
  back = model.reverse(y, weights, state, new_state, rng)
  for got, want in zip(back, x):
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)
