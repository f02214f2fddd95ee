"""Combinators: data-stack arity algebra and semantics against hand-written numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plait.layers as tl
from plait.shapes import signature
from tests.conftest import random_array

RNG = jax.random.key(0)


def run(layer, x, rng=RNG):
  w, s = layer.init(signature(x), rng=rng)
  return layer.pure_fn(x, w, s, rng)[0], w


@pytest.mark.parametrize('make, n_in, n_out', [
    (lambda: tl.Serial(tl.Dense(3), tl.Dense(4)), 1, 1),
    (lambda: tl.Serial(tl.Dup(), tl.Add()), 1, 1),
    (lambda: tl.Serial(tl.Add(), tl.Add()), 3, 1),
    (lambda: tl.Serial(tl.Dup(), tl.Dup()), 1, 3),
    (lambda: tl.Serial(tl.Swap(), tl.Drop()), 2, 1),
    (lambda: tl.Branch(tl.Dense(2), tl.Serial(tl.Add()), None), 2, 3),
    (lambda: tl.Parallel(tl.Dense(2), tl.Add(), tl.Dup()), 4, 4),
    (lambda: tl.Select([2, 0, 0]), 3, 3),
    (lambda: tl.Select([0], n_in=3), 3, 1),
    (lambda: tl.Residual(tl.Dense(5)), 1, 1),
    (lambda: tl.Concatenate(3), 3, 1),
    (lambda: tl.Serial(), 1, 1),
])
def test_arity_algebra(make, n_in, n_out):
  layer = make()
  assert (layer.n_in, layer.n_out) == (n_in, n_out)


def test_nested_lists_flatten_into_serial():
  layer = tl.Serial(tl.Dense(3), [tl.Relu(), [tl.Dense(2)]], None)
  assert [l.name for l in layer.sublayers] == ['Dense_3', 'Relu', 'Dense_2']


def test_serial_runs_in_order_and_branch_copies_top():
  a, b = random_array((3, 4), 1), random_array((3, 4), 2)
  y, _ = run(tl.Serial(tl.Branch(tl.Add(), tl.Select([1])), tl.Fn('Sub', lambda u, v: u - v)),
             (a, b))
  np.testing.assert_allclose(y, (a + b) - b, rtol=1e-6)


def test_parallel_applies_each_layer_to_its_own_slice():
  a, b, c = (random_array((2, 3), i) for i in range(3))
  (y1, y2), _ = run(tl.Parallel(tl.Fn('Neg', lambda x: -x), tl.Add()), (a, b, c))
  np.testing.assert_allclose(y1, -a)
  np.testing.assert_allclose(y2, b + c, rtol=1e-6)


def test_select_swap_dup_drop():
  a, b, c = (random_array((2,), i) for i in range(3))
  out, _ = run(tl.Select([2, 0, 2]), (a, b, c))
  for got, want in zip(out, (c, a, c)):
    np.testing.assert_array_equal(got, want)
  (s1, s2), _ = run(tl.Swap(), (a, b))
  np.testing.assert_array_equal(s1, b)
  np.testing.assert_array_equal(s2, a)
  (d1, d2), _ = run(tl.Dup(), a)
  np.testing.assert_array_equal(d1, d2)
  y, _ = run(tl.Serial(tl.Drop(), tl.Fn('Id', lambda x: x)), (a, b))
  np.testing.assert_array_equal(y, b)


def test_residual_adds_input_and_optional_shortcut():
  x = random_array((3, 4))
  layer = tl.Residual(tl.Dense(4))
  y, w = run(layer, x)
  ((kernel, bias),), = w   # Residual -> Serial body -> Dense
  np.testing.assert_allclose(y, x @ kernel + bias + x, rtol=1e-5, atol=1e-6)
  layer = tl.Residual(tl.Dense(6), shortcut=tl.Dense(6))
  y, (((k1, b1),), (k2, b2)) = run(layer, x)
  np.testing.assert_allclose(y, x @ k1 + b1 + x @ k2 + b2, rtol=1e-5, atol=1e-5)


def test_concatenate():
  a, b = random_array((2, 3), 1), random_array((2, 5), 2)
  y, _ = run(tl.Concatenate(), (a, b))
  np.testing.assert_array_equal(y, np.concatenate([a, b], -1))


def test_nested_serial_equals_flat_serial():
  x = random_array((3, 4))
  flat = tl.Serial(tl.Dense(5), tl.Relu(), tl.Dense(2))
  w, s = flat.init(signature(x))
  nested = tl.Serial(tl.Dense(5), tl.Serial(tl.Relu(), tl.Dense(2)))
  nested_w = (w[0], (w[1], w[2]))
  nested_s = (s[0], (s[1], s[2]))
  np.testing.assert_allclose(flat.pure_fn(x, w, s)[0], nested.pure_fn(x, nested_w, nested_s)[0])


def cumsum_cell():
  """(x_t, carry) -> (y_t, carry'): a running sum."""
  return tl.Fn('CumSum', lambda x, c: (x + c, x + c), n_out=2)


def test_scan_is_a_running_sum():
  xs, c0 = random_array((5, 3), 1), random_array((3,), 2)
  (ys, c), _ = run(tl.Scan(cumsum_cell()), (xs, c0))
  np.testing.assert_allclose(ys, np.cumsum(xs, 0) + c0, rtol=1e-5)
  np.testing.assert_allclose(c, ys[-1])


def test_scan_along_axis_1_with_weights_shared_across_steps():
  cell = tl.Serial(tl.Parallel(tl.Dense(3), None), tl.Add(), tl.Tanh(), tl.Dup())
  xs, c0 = random_array((2, 6, 3), 1), random_array((2, 3), 2)
  layer = tl.Scan(cell, axis=1)
  (ys, c), w = run(layer, (xs, c0))
  assert ys.shape == (2, 6, 3)
  k, b = w[0][0][0]   # Scan -> Serial cell -> Parallel -> Dense
  carry = c0
  for t in range(6):
    carry = np.tanh(xs[:, t] @ k + b + carry)
    np.testing.assert_allclose(ys[:, t], carry, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('n', [12, 13])  # 13: a partial tail chunk
def test_chunk_equals_unchunked_including_gradients(n):
  x = random_array((n, 4))
  body = tl.Serial(tl.Dense(8), tl.Gelu(), tl.Dense(4))
  w, s = body.init(signature(x))
  chunked = tl.Chunk(body, chunk_size=4)
  f = lambda x, w: body.pure_fn(x, w, s)[0]
  g = lambda x, w: chunked.pure_fn(x, (w,), (s,))[0]
  np.testing.assert_allclose(g(x, w), f(x, w), rtol=1e-6, atol=1e-6)
  loss = lambda fn: jax.grad(lambda x, w: jnp.sum(fn(x, w) ** 2), argnums=(0, 1))(x, w)
  for a, b in zip(jax.tree_util.tree_leaves(loss(g)), jax.tree_util.tree_leaves(loss(f))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_chunk_gives_each_chunk_its_own_dropout_mask():
  x = np.ones((8, 64), np.float32) + random_array((8, 64)) ** 2
  layer = tl.Chunk(tl.Dropout(0.5), chunk_size=4)
  y, _ = run(layer, x)
  assert not np.array_equal(y[:4] == 0, y[4:] == 0)


def test_cond_picks_a_branch_under_jit():
  x = random_array((3,))
  layer = tl.Cond(tl.Fn('Pos', lambda x: jnp.sum(x) > 0), tl.Fn('Neg', lambda x: -x))
  w, s = layer.init(signature(x))
  f = jax.jit(lambda x: layer.pure_fn(x, w, s)[0])
  np.testing.assert_allclose(f(x), -x if x.sum() > 0 else x)
  np.testing.assert_allclose(f(-x), -x if x.sum() > 0 else x)


COMBINATORS = {
    'serial': lambda: tl.Serial(tl.Dense(4), tl.Relu(), tl.Dense(3)),
    'branch': lambda: tl.Serial(tl.Branch(tl.Dense(3), tl.Dense(3)), tl.Add()),
    'parallel': lambda: tl.Serial(tl.Dup(), tl.Parallel(tl.Dense(3), tl.Dense(3)), tl.Add()),
    'residual': lambda: tl.Residual(tl.LayerNorm(), tl.Dense(4)),
    'chunk': lambda: tl.Chunk(tl.Dense(4), chunk_size=2),
}


@pytest.mark.parametrize('name', sorted(COMBINATORS))
def test_jit_and_vmap_equal_eager(name):
  layer = COMBINATORS[name]()
  x = random_array((6, 4))
  w, s = layer.init(signature(x))
  eager = layer.pure_fn(x, w, s)[0]
  np.testing.assert_allclose(jax.jit(lambda x: layer.pure_fn(x, w, s)[0])(x), eager,
                             rtol=1e-5, atol=1e-6)
  batched = jax.vmap(lambda xi: layer.pure_fn(xi, w, s)[0])(x.reshape(3, 2, 4))
  np.testing.assert_allclose(batched.reshape(eager.shape), eager, rtol=1e-5, atol=1e-6)


def test_too_few_inputs_is_explained():
  layer = tl.Serial(tl.Dense(3), tl.Add())
  assert layer.n_in == 2
  with pytest.raises(tl.LayerError) as e:
    layer.init(signature(random_array((2, 3))))
  text = str(e.value)
  assert 'Serial' in text and '2' in text and 'Add' in text, text


class _Counter(tl.Layer):
  """y = x + count; state: how many times it ran."""

  def forward(self, x, weights, state, rng):
    return x + state, state + 1

  def init_weights_and_state(self, input_signature, rng):
    return (), jnp.zeros((), jnp.float32)


def test_cond_updates_the_taken_branch_state_and_keeps_the_other():
  pred = tl.Fn('positive', lambda x: jnp.sum(x) > 0)
  layer = tl.Cond(pred, _Counter(), _Counter())
  x = jnp.ones((3,))
  w, s = layer.init(signature(x))
  step = jax.jit(layer.pure_fn)
  for _ in range(2):
    _, s = step(x, w, s)
  _, s = step(-x, w, s)
  assert (float(s[1]), float(s[2])) == (2.0, 1.0)   # true ran twice, false once


def test_chunk_refuses_a_stateful_sublayer_naming_it():
  with pytest.raises(tl.LayerError, match='_Counter has state.*cannot thread state'):
    tl.Chunk(_Counter(), chunk_size=2).init(signature(jnp.ones((4, 3))))


def test_residual_adds_the_first_output_and_passes_side_outputs_through():
  body = tl.Fn('ScaleWithMask', lambda x, mask: (2.0 * x * mask, mask), n_out=2)
  layer = tl.Residual(tl.LayerNorm(), body)   # LayerNorm pops only x; the mask rides along
  assert (layer.n_in, layer.n_out) == (2, 2)
  x, mask = random_array((3, 4)), jnp.array([1.0, 0.0, 1.0, 1.0])
  (y, kept), w = run(layer, (x, mask))
  ln, _ = tl.LayerNorm().pure_fn(x, w[0][0], ())
  np.testing.assert_allclose(y, x + 2.0 * ln * mask, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(kept, mask)
  with pytest.raises(ValueError, match='shortcut .* must have n_out=1'):
    tl.Residual(tl.Dense(2), shortcut=tl.Dup())
