"""The layer contract: init/pure_fn purity, determinism, sharing, signatures, errors."""
import jax
import jax.test_util  # noqa: F401  (check_grads)
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import plait.layers as tl
from plait.shapes import ShapeDtype, signature
from tests.conftest import random_array


def mlp():
  return tl.Serial(tl.Dense(16), tl.Relu(), tl.Dense(4))


def test_same_seed_gives_same_weights_and_outputs():
  x = random_array((3, 8))
  w1, s1 = mlp().init(signature(x), rng=jax.random.key(7))
  w2, s2 = mlp().init(signature(x), rng=jax.random.key(7))
  jax.tree_util.tree_map(np.testing.assert_array_equal, w1, w2)
  y1, _ = mlp().pure_fn(x, w1, s1)
  y2, _ = mlp().pure_fn(x, w2, s2)
  np.testing.assert_array_equal(y1, y2)


def test_different_seeds_give_different_weights():
  sig = ShapeDtype((3, 8))
  w1, _ = mlp().init(sig, rng=jax.random.key(1))
  w2, _ = mlp().init(sig, rng=jax.random.key(2))
  assert not np.allclose(w1[0][0], w2[0][0])


def test_sibling_sublayers_get_different_rngs():
  layer = tl.Serial(tl.Dense(8), tl.Dense(8))
  w, _ = layer.init(ShapeDtype((2, 8)))
  assert not np.allclose(w[0][0], w[1][0])


def test_jit_equals_eager():
  model = mlp()
  x = random_array((5, 8), seed=1)
  w, s = model.init(signature(x))
  eager, _ = model.pure_fn(x, w, s)
  jitted, _ = jax.jit(model.pure_fn)(x, w, s)
  np.testing.assert_allclose(eager, jitted, rtol=1e-6, atol=1e-6)


def test_pure_fn_does_not_read_notebook_cache():
  model = tl.Dense(3)
  x = random_array((2, 4))
  w, s = model.init(signature(x), rng=jax.random.key(0))
  other_w, _ = tl.Dense(3).init(signature(x), rng=jax.random.key(1))
  y, _ = model.pure_fn(x, other_w, s)
  np.testing.assert_allclose(y, x @ other_w[0] + other_w[1], rtol=1e-6)


def test_call_sugar_initializes_and_uses_remembered_weights():
  model = mlp()
  x = random_array((2, 8))
  y = model(x)
  expected, _ = model.pure_fn(x, model.weights, model.state)
  np.testing.assert_array_equal(y, expected)


def test_weights_property_without_init_explains():
  with pytest.raises(ValueError, match=r'layer\(x\) once, or set layer.weights'):
    _ = tl.Dense(3).weights


def test_init_stores_nothing_so_eval_shape_leaves_no_tracers():
  model = mlp()
  x = random_array((2, 8))
  jax.eval_shape(lambda: model.init(signature(x)))   # used to leave tracers in the cache
  model.init(signature(x), rng=jax.random.key(3))    # and a plain init remembers nothing
  with pytest.raises(ValueError, match='no remembered weights'):
    _ = model.weights
  y = model(x)                                       # sugar: initializes with rng 0
  w, s = model.init(signature(x), rng=jax.random.key(0))
  np.testing.assert_array_equal(y, model.pure_fn(x, w, s)[0])


def test_fn_rejects_keyword_only_inputs_and_keeps_keyword_settings():
  with pytest.raises(ValueError, match="keyword-only parameter 'y' has no default"):
    tl.Fn('kw', lambda x, *, y: x + y)
  scaled = tl.Fn('scaled', lambda x, *, scale=2.0: x * scale)
  assert scaled.n_in == 1
  np.testing.assert_array_equal(scaled(jnp.ones((2,))), 2.0 * jnp.ones((2,)))


def test_vmap_over_pure_fn():
  model = mlp()
  xs = random_array((4, 2, 8))
  w, s = model.init(ShapeDtype((2, 8)))
  batched = jax.vmap(lambda x: model.pure_fn(x, w, s)[0])(xs)
  for i in range(4):
    np.testing.assert_allclose(batched[i], model.pure_fn(xs[i], w, s)[0], rtol=1e-5, atol=1e-6)


@settings(deadline=None, max_examples=15)
@given(batch=st.integers(1, 3), length=st.integers(1, 5), d=st.integers(1, 6),
       dtype=st.sampled_from([np.float32, np.float16]))
def test_output_signature_matches_actual_output(batch, length, d, dtype):
  layers = [tl.Dense(3), tl.LayerNorm(), tl.RMSNorm(), tl.Relu(), tl.Gelu(), tl.Softmax(),
            tl.Flatten(), tl.Residual(tl.Dense(d)), tl.Serial(tl.Dup(), tl.Add())]
  x = random_array((batch, length, d)).astype(dtype)
  for layer in layers:
    w, s = layer.init(signature(x))
    y, _ = layer.pure_fn(x, w, s)
    assert layer.output_signature(signature(x)) == signature(y), layer.name


def test_shared_sublayer_has_one_set_of_weights():
  dense = tl.Dense(8)
  model = tl.Serial(dense, tl.Relu(), dense)
  x = random_array((2, 8))
  w, s = model.init(signature(x))
  assert w[2] == ()
  y, _ = model.pure_fn(x, w, s)
  manual = jax.nn.relu(x @ w[0][0] + w[0][1]) @ w[0][0] + w[0][1]
  np.testing.assert_allclose(y, manual, rtol=1e-5, atol=1e-6)


def test_shared_weights_get_summed_gradients():
  dense = tl.Dense(8, use_bias=False)
  model = tl.Serial(dense, dense)
  x = random_array((2, 8))
  w, s = model.init(signature(x))
  g = jax.grad(lambda w: jnp.sum(model.pure_fn(x, w, s)[0]))(w)
  a = w[0][0]
  g_manual = jax.grad(lambda a: jnp.sum(x @ a @ a))(a)
  np.testing.assert_allclose(g[0][0], g_manual, rtol=1e-5, atol=1e-5)


def test_summary_counts_shared_weights_once():
  dense = tl.Dense(8)
  text = tl.summary(tl.Serial(dense, dense), ShapeDtype((2, 8)), print_fn=None)
  assert 'Total parameters: 72' in text


def test_repr_prints_the_tree():
  assert repr(tl.Serial(tl.Dense(4), tl.Branch(tl.Relu(), tl.Dense(2)))) == (
      'Serial[\n  Dense_4\n  Branch[\n    Relu\n    Dense_2\n  ]\n]')


def test_layer_error_names_path_creation_site_shapes_and_cause():
  bad = tl.Fn('Bad', lambda a: a @ jnp.ones((5, 5)))  # line with the creation site
  model = tl.Serial(tl.Dense(4), tl.Branch(tl.Relu(), tl.Serial(tl.Dense(3), bad)))
  with pytest.raises(tl.LayerError) as info:
    model.init(ShapeDtype((2, 8)))
  text = str(info.value)
  assert info.value.path == 'Serial/Branch[1]/Serial[1]/Bad[1]'
  assert 'test_base.py:' in text
  assert 'float32[2, 3]' in text
  assert 'dot_general' in text


def test_layer_error_from_pure_fn_on_wrong_input_shape():
  model = mlp()
  w, s = model.init(ShapeDtype((2, 8)))
  with pytest.raises(tl.LayerError, match=r'Serial/Dense_16\[0\]') as info:
    model.pure_fn(random_array((2, 5)), w, s)
  assert 'float32[2, 5]' in str(info.value)


def test_arity_error_in_words():
  model = tl.Serial(tl.Dense(4), tl.Add())
  assert model.n_in == 2
  with pytest.raises(tl.LayerError, match='Serial needs 2 inputs, got 1') as info:
    model(random_array((2, 4)))
  assert 'Add' in str(info.value)


def test_single_input_layer_given_tuple_explains():
  with pytest.raises(tl.LayerError, match='takes 1 input'):
    tl.Dense(3)((random_array((2, 3)), random_array((2, 3))))


def test_fn_counts_inputs_and_checks_outputs():
  assert tl.Fn('three', lambda a, b, c: a).n_in == 3
  two = tl.Fn('two', lambda a: a, n_out=2)
  with pytest.raises(tl.LayerError, match='declared n_out=2'):
    two(random_array((2,)))
  with pytest.raises(ValueError, match=r'\*args'):
    tl.Fn('var', lambda *a: a)


def test_non_layer_sublayer_is_rejected():
  with pytest.raises(TypeError, match='Expected a Layer'):
    tl.Serial(tl.Dense(3), 'relu')


@pytest.mark.parametrize('make', [lambda: tl.Dense(3), tl.LayerNorm, tl.RMSNorm,
                                  lambda: tl.Residual(tl.Dense(4), tl.Tanh())])
def test_gradients_match_finite_differences(make):
  layer = make()
  x = random_array((2, 4), seed=3).astype(np.float64)
  with jax.enable_x64():
    w, s = layer.init(signature(x))
    w = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), w)
    f = lambda x, w: layer.pure_fn(x, w, s)[0]
    jax.test_util.check_grads(f, (x, w), order=1, modes=['rev'], atol=1e-4, rtol=1e-4)
