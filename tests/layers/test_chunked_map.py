"""chunked_map: values and gradients equal a plain map; Chunk and head chunking use it."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plait.layers as tl
from plait.layers.chunked_map import chunked_map
from tests.conftest import random_array

N_CHUNKS = 4


def fn(params, consts, x, i):
  """Weights, a dropout mask from a per-chunk rng, an int state in and out."""
  (w, b), (rng, scale) = params, consts
  h, count = x
  keep = jax.random.bernoulli(jax.random.fold_in(rng, i), 0.7, (h.shape[0], w.shape[1]))
  y = jnp.tanh(h @ w + b) * keep * scale
  return y, (count + jnp.sum(keep).astype(jnp.int32), i)


def plain(params, consts, xs):
  """The reference: a Python loop, no checkpointing, no custom_vjp."""
  outs = [fn(params, consts, jax.tree_util.tree_map(lambda t, i=i: t[i], xs), i)
          for i in range(N_CHUNKS)]
  return jax.tree_util.tree_map(lambda *t: jnp.stack(t), *outs)


def inputs(dtype=jnp.float32):
  params = (jnp.asarray(random_array((5, 7), 1), dtype), jnp.asarray(random_array((7,), 2), dtype))
  xs = (jnp.asarray(random_array((N_CHUNKS, 3, 5)), dtype), jnp.arange(N_CHUNKS, dtype=jnp.int32))
  consts = (jax.random.key(3), jnp.asarray(2.0, dtype))
  return params, consts, xs


def loss(map_fn):
  def f(params, xs, consts):
    ys, (count, _) = map_fn(params, consts, xs)
    return jnp.sum(jnp.sin(ys) * jnp.arange(ys.size).reshape(ys.shape)) + 0 * jnp.sum(count)
  return f


def grads(map_fn, params, consts, xs):
  return jax.jit(jax.grad(loss(map_fn), argnums=(0, 1), allow_int=True))(params, xs, consts)


def chunked(params, consts, xs):
  return chunked_map(fn, xs, params, consts)


def test_values_and_aux_equal_a_plain_loop():
  params, consts, xs = inputs()
  got, want = jax.jit(chunked)(params, consts, xs), plain(params, consts, xs)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_gradients_equal_a_plain_loop_with_weights_rng_and_int_inputs():
  params, consts, xs = inputs()
  got, want = grads(chunked, params, consts, xs), grads(plain, params, consts, xs)
  assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    assert a.dtype == b.dtype
    if a.dtype != jax.dtypes.float0:
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bfloat16_weight_gradients_keep_their_dtype():
  params, consts, xs = inputs(jnp.bfloat16)
  got, want = grads(chunked, params, consts, xs), grads(plain, params, consts, xs)
  for a, b in zip(got[0], want[0]):
    assert a.dtype == b.dtype == jnp.bfloat16
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    np.testing.assert_allclose(a, b, atol=2e-2 * np.abs(b).max())


def test_works_under_vmap_and_without_differentiation():
  params, consts, xs = inputs()
  batched = jax.vmap(lambda h: chunked(params, consts, (h, xs[1]))[0])(jnp.stack([xs[0]] * 2))
  np.testing.assert_allclose(batched[1], plain(params, consts, xs)[0], rtol=1e-6, atol=1e-6)


def test_leading_axes_must_agree():
  with pytest.raises(ValueError, match=r'same leading \(chunk\) axis.*\(4, 3\).*\(5,\)'):
    chunked_map(lambda p, c, x, i: (x[0], ()), (jnp.ones((4, 3)), jnp.ones((5,))))


# ----- layers built on it -----
@pytest.mark.parametrize('n', [12, 13])  # 13: a partial tail chunk
def test_chunk_with_dropout_equals_an_unrolled_loop(n):
  body = tl.Serial(tl.Dense(8), tl.Gelu(), tl.Dropout(0.3), tl.Dense(4))
  layer = tl.Chunk(body, chunk_size=4)
  x = random_array((n, 4))
  weights, state = layer.init(x)
  rng = jax.random.key(5)
  def unrolled(w, x):
    outs = [body.pure_fn(x[i:i + 4], w[0], state[0],
                         jax.random.fold_in(jax.random.fold_in(rng, i // 4), 0))[0]
            for i in range(0, n, 4)]
    return jnp.concatenate(outs)
  def chunked_layer(w, x):
    return layer.pure_fn(x, w, state, rng)[0]
  np.testing.assert_allclose(chunked_layer(weights, x), unrolled(weights, x), rtol=1e-6, atol=1e-6)
  g = lambda f: jax.jit(jax.grad(lambda w, x: jnp.sum(jnp.sin(f(w, x))), argnums=(0, 1)))(
      weights, x)
  for a, b in zip(jax.tree_util.tree_leaves(g(chunked_layer)), jax.tree_util.tree_leaves(g(unrolled))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_chunk_error_names_the_layer_path_and_shapes():
  layer = tl.Chunk(tl.Serial(tl.Dense(8), tl.Fn('Bad', lambda x: x @ jnp.ones((3, 3)))), 4)
  x = random_array((12, 4))
  weights, state = tl.Chunk(tl.Serial(tl.Dense(8), tl.Relu()), 4).init(x)
  with pytest.raises(tl.LayerError, match=r'Chunk_4/Serial\[0\]/Bad\[1\][\s\S]*float32\[4, 8\]'):
    jax.grad(lambda w: jnp.sum(layer.pure_fn(x, w, state)[0]))(weights)


def test_head_chunked_lsh_gradients_equal_unchunked():
  def layer(head_chunk_size):
    return tl.LSHSelfAttention(16, n_heads=4, n_hashes=2, n_buckets=4, chunk_len=8,
                               causal=True, dropout=0.1, head_chunk_size=head_chunk_size)
  x = random_array((2, 32, 16))
  chunked_layer, whole = layer(1), layer(None)
  weights, state = whole.init(x)
  rng = jax.random.key(7)
  def run(l):
    def f(w, x):
      y, s = l.pure_fn(x, w, state, rng)
      return jnp.sum(jnp.sin(y)), s
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(weights, x)
  (got_loss, got_state), got = run(chunked_layer)
  (want_loss, want_state), want = run(whole)
  np.testing.assert_allclose(got_loss, want_loss, rtol=1e-6)
  np.testing.assert_array_equal(got_state, want_state)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
