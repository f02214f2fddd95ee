"""Serial/ReversibleSerial(scan_layers=True) equal their unrolled selves, by one lax.scan."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plait.layers as tl
from plait.layers import combinators, scan_layers
from tests.conftest import random_array
from tests.layers.test_reversible import _grad_temp_bytes

D = 8


def _block(activation=tl.Relu, mode='train'):
  return tl.Serial(
      tl.Residual(tl.LayerNorm(), tl.Dense(2 * D), activation(), tl.Dropout(0.5, mode=mode),
                  tl.Dense(D)),
      name='Block')


def _stack(scan, n=4, period=1, mode='train'):
  kinds = [tl.Relu, tl.Tanh][:period]
  return tl.Serial(tl.Dense(D), [_block(kinds[i % period], mode) for i in range(n)],
                   tl.Dense(3), scan_layers=scan)


def _rev_stack(scan, n_groups=3, d=D, mode='train'):
  layers = []
  for _ in range(n_groups):   # One group: [relu FF, tanh FF] half-residuals with swaps.
    for act in (tl.Relu, tl.Tanh):
      layers += [tl.ReversibleHalfResidual(tl.LayerNorm(), tl.Dense(2 * d), act(),
                                           tl.Dropout(0.5, mode=mode), tl.Dense(d)),
                 tl.ReversibleSwap()]
  return tl.ReversibleSerial(layers, scan_layers=scan)


def _run(layer, x, weights, state, rng):
  """(outputs, grads w.r.t. (weights, x)) of a random projection of the outputs."""
  def loss(w, x):
    y, _ = layer.pure_fn(x, w, state, rng)
    ys = jax.tree.leaves(y)
    return sum(jnp.sum(v * random_array(v.shape, seed=7)) for v in ys), y
  (_, y), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(weights, x)
  return y, grads


def _assert_close(a, b, rtol=1e-5, atol=1e-5):
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)


def _n_scans(fn, *args):
  return str(jax.make_jaxpr(fn)(*args)).count(' scan[')


def test_repeat_plan_finds_runs_and_periods():
  keys = ['a', 'b', 'x', 'y', 'x', 'y', 'c']
  assert scan_layers.repeat_plan(keys, lambda s, p: True) == [0, 1, (2, 2, 2), 6]
  assert scan_layers.repeat_plan(list('ebbbbd'), lambda s, p: True) == [0, (1, 1, 4), 5]
  assert scan_layers.repeat_plan(list('abab'), lambda s, p: False) == [0, 1, 2, 3]


def test_serial_plan_scans_the_blocks():
  assert _stack(True, n=4, period=2).scan_plan() == [0, (1, 2, 2), 5]


@pytest.mark.parametrize('period', [1, 2])
def test_scanned_serial_equals_unrolled_train_and_eval(period):
  x = random_array((2, 5, D))
  for mode, rng in (('train', jax.random.key(3)), ('eval', None)):
    plain, scanned = _stack(False, period=period, mode=mode), _stack(True, period=period, mode=mode)
    weights, state = plain.init(x)
    y0, g0 = _run(plain, x, weights, state, rng)
    y1, g1 = _run(scanned, x, weights, state, rng)
    _assert_close(y1, y0)
    _assert_close(g1, g0)
  assert _n_scans(lambda w: scanned.pure_fn(x, w, state, jax.random.key(3)), weights) == 1
  assert _n_scans(lambda w: plain.pure_fn(x, w, state, jax.random.key(3)), weights) == 0


def test_the_comparison_catches_a_wrong_rng_or_layer_order(monkeypatch):
  """Mutants of the scan (rngs, or groups, in reverse) must fail the equality above."""
  x = random_array((2, 5, D))
  plain, scanned = _stack(False), _stack(True)
  weights, state = plain.init(x)
  rng = jax.random.key(3)
  y0, _ = _run(plain, x, weights, state, rng)
  group_step = combinators._group_step  # pylint: disable=protected-access
  real_scan = scan_layers.scan_steps
  def wrong_rng(layer, indices, carry, args):
    w, s, r = args
    return group_step(layer, indices, carry, (w, s, jax.random.split(r[0], len(r))))
  monkeypatch.setattr(combinators, '_group_step', wrong_rng)
  with pytest.raises(AssertionError):
    _assert_close(_run(scanned, x, weights, state, rng)[0], y0)
  monkeypatch.setattr(combinators, '_group_step', group_step)
  monkeypatch.setattr(scan_layers, 'scan_steps',
                      lambda steps, carry, args, **kw: real_scan(steps, carry, args[::-1], **kw))
  with pytest.raises(AssertionError):
    _assert_close(_run(scanned, x, weights, state, rng)[0], y0)


def test_same_repr_different_program_runs_unrolled():
  """Two Fn layers named alike but computing different things are not scanned."""
  layer = tl.Serial([tl.Fn('F', lambda x, c=c: x * c) for c in (2.0, 3.0, 5.0)],
                    scan_layers=True)
  assert layer.scan_plan() == [(0, 1, 3)]
  x = random_array((3,))
  weights, state = layer.init(x)
  np.testing.assert_allclose(layer.pure_fn(x, weights, state)[0], x * 30.0, rtol=1e-6)
  assert _n_scans(lambda x: layer.pure_fn(x, weights, state)[0], x) == 0


def test_per_layer_constants_are_scanned_inputs():
  """Layers that differ only in array constants (like BigBird's random blocks) scan."""
  perms = [np.array(p) for p in ([1, 2, 0], [2, 0, 1], [0, 2, 1])]
  layer = tl.Serial([tl.Fn('Permute', lambda x, p=p: jnp.sin(x[p])) for p in perms],
                    scan_layers=True)
  x = random_array((3,))
  expected = x
  for p in perms:
    expected = np.sin(expected[p])
  weights, state = layer.init(x)
  np.testing.assert_allclose(layer.pure_fn(x, weights, state)[0], expected, rtol=1e-6)
  assert _n_scans(lambda x: layer.pure_fn(x, weights, state)[0], x) == 1


def test_constants_in_custom_vjp_closures_are_not_scanned():
  """A custom_vjp closing over a per-layer constant would get the first layer's: unrolled."""
  def scaled(c):
    c = np.float32(c) * np.ones(3, np.float32)
    @jax.custom_vjp
    def f(x):
      return x * c
    f.defvjp(lambda x: (x * c, None), lambda _, g: (g * c,))
    return f
  layer = tl.Serial([tl.Fn('Scale', scaled(c)) for c in (2.0, 3.0)], scan_layers=True)
  x = random_array((3,))
  weights, state = layer.init(x)
  grad = jax.grad(lambda x: jnp.sum(layer.pure_fn(x, weights, state)[0]))(x)
  np.testing.assert_allclose(grad, np.full(3, 6.0), rtol=1e-6)
  assert _n_scans(lambda x: layer.pure_fn(x, weights, state)[0], x) == 0


def test_state_is_per_layer_in_and_out():
  x = jnp.ones((2, 3))
  counter = lambda: tl.Serial(tl.PureLayer(lambda v: v + 1.0), name='Block')
  class Count(tl.Layer):
    def forward(self, inputs, weights, state, rng):
      return inputs * weights, state + 1
    def init_weights_and_state(self, input_signature, rng):
      return jnp.float32(2.0), jnp.zeros((), jnp.int32)
  for scan in (False, True):
    layer = tl.Serial([Count() for _ in range(3)], counter(), scan_layers=scan)
    weights, state = layer.init(x)
    state = (jnp.int32(5), jnp.int32(0), jnp.int32(7), state[3])
    y, new_state = layer.pure_fn(x, weights, state)
    np.testing.assert_allclose(y, 8 * x + 1)
    assert [int(s) for s in new_state[:3]] == [6, 1, 8]


def test_shape_error_inside_the_scan_names_the_layer():
  x = random_array((2, D))
  layer = _stack(True)
  weights, state = layer.init(x)
  bad = list(weights)
  bad[3] = jax.tree.map(lambda w: w[:1] if w.shape == (D, 2 * D) else w, bad[3])
  with pytest.raises(tl.LayerError, match=r'Serial/Block\[3\]/Residual\[0\]/Serial\[0\]/Dense'):
    layer.pure_fn(x, tuple(bad), state, jax.random.key(0))


@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_scanned_reversible_equals_unrolled(mode):
  rng = jax.random.key(5) if mode == 'train' else None
  x = (random_array((2, 4, D), seed=1), random_array((2, 4, D), seed=2))
  plain, scanned = _rev_stack(False, mode=mode), _rev_stack(True, mode=mode)
  assert scanned.scan_plan() == [(0, 4, 3)]
  weights, state = plain.init(x)
  y0, g0 = _run(plain, x, weights, state, rng)
  y1, g1 = _run(scanned, x, weights, state, rng)
  _assert_close(y1, y0)
  _assert_close(g1, g0)
  grad = jax.grad(lambda w: jnp.sum(scanned.pure_fn(x, w, state, rng)[0][0]))
  assert _n_scans(grad, weights) == 2   # The forward and the reverse scan.


def test_reversible_reverse_scan_catches_wrong_group_order(monkeypatch):
  x = (random_array((2, 4, D), seed=1), random_array((2, 4, D), seed=2))
  plain, scanned = _rev_stack(False, mode='eval'), _rev_stack(True, mode='eval')
  weights, state = plain.init(x)
  _, g0 = _run(plain, x, weights, state, None)
  from plait.layers import reversible  # pylint: disable=import-outside-toplevel
  real_scan = reversible.scan_steps
  monkeypatch.setattr(reversible, 'scan_steps',
                      lambda steps, carry, args, **kw: real_scan(steps, carry, args[::-1], **kw))
  with pytest.raises(AssertionError):
    _assert_close(_run(scanned, x, weights, state, None)[1], g0)


def test_scanned_reversible_memory_flat_in_number_of_groups():
  """6 more groups add no activations: only the stacked weights and their cotangents."""
  d, length = 32, 4096
  temp = {n: _grad_temp_bytes(_rev_stack(True, n, d, 'eval'), d, length) for n in (2, 8)}
  activation = length * d * 4   # One (1, L, d) float32 stream; unrolled plain: 24 more.
  print({n: round(t / 2**20, 2) for n, t in temp.items()}, 'MiB')
  assert temp[8] - temp[2] < activation
