"""Reversible layers: exact gradients with recomputation, reconstruction, memory."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plait.layers as tl
from plait.layers.base import Layer
from tests.conftest import random_array

D = 16


def ff(d=D, d_ff=32, dropout=0.0):
  return [tl.LayerNorm(), tl.Dense(d_ff), tl.Relu(), tl.Dropout(dropout), tl.Dense(d)]


def ff_blocks(n, d=D, dropout=0.0):
  """n RevNet halves: (x1, x2) -> (x2, x1 + FF(x2)), each with its own weights."""
  out = []
  for _ in range(n):
    out += [tl.ReversibleHalfResidual(*ff(d, dropout=dropout)), tl.ReversibleSwap()]
  return out


def pair(shape, seed=0):
  return (random_array(shape, seed), random_array(shape, seed + 1))


def _loss(layer, x, weights, state, rng):
  """A loss that mixes all float outputs (so every output's cotangent matters)."""
  y, new_state = layer.pure_fn(x, weights, state, rng)
  ys = [v for v in (y if isinstance(y, tuple) else (y,)) if jnp.issubdtype(v.dtype, jnp.floating)]
  return sum(jnp.sum(jnp.sin(v) * (i + 1.5)) for i, v in enumerate(ys)), (y, new_state)


_JITTED = {}


def run(layer, x, weights, state, rng=None):
  """Jitted (outputs, new_state, d(loss)/d(weights, inputs)) of `layer` (one compile each)."""
  if layer not in _JITTED:
    def f(w, x, s, rng):
      (_, (y, new_state)), g = jax.value_and_grad(
          lambda w, x: _loss(layer, x, w, s, rng), argnums=(0, 1), has_aux=True,
          allow_int=True)(w, x)
      return y, new_state, g
    _JITTED[layer] = jax.jit(f)
  return _JITTED[layer](weights, x, state, rng)


def assert_trees_close(a, b, rtol=1e-4, atol=1e-5):
  la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  assert la
  for u, v in zip(la, lb):
    if u.dtype == jax.dtypes.float0:
      continue
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol)


def assert_same_grads_as_plain(layers, x, rng=None, **tol):
  """ReversibleSerial(layers) vs Serial(layers): same weights tree, same per-layer rng.

  Returns the reversible stack's (outputs, new_state, grads).
  """
  rev, plain = tl.ReversibleSerial(layers), tl.Serial(layers)
  weights, state = rev.init(x, rng=jax.random.key(1))
  assert jax.tree_util.tree_structure(plain.init(x)[0]) == jax.tree_util.tree_structure(weights)
  got, want = run(rev, x, weights, state, rng), run(plain, x, weights, state, rng)
  assert_trees_close(got[:2], want[:2], rtol=1e-6, atol=1e-6)
  assert_trees_close(got[2], want[2], **tol)
  return got


class ScaleCounter(tl.ReversibleLayer):
  """y = x * exp(w) * (1 + count / 4); state: count of calls. Reversible, uses `reverse` only."""

  def __init__(self):
    super().__init__(name='ScaleCounter')

  def forward(self, x, weights, state, rng):
    return x * jnp.exp(weights[0]) * (1.0 + state / 4.0), state + 1

  def init_weights_and_state(self, input_signature, rng):
    return (0.1 * jax.random.normal(rng, input_signature.shape[-1:]),), jnp.ones((), jnp.int32)

  def reverse(self, outputs, weights=(), state=(), new_state=(), rng=None):
    return outputs / (jnp.exp(weights[0]) * (1.0 + state / 4.0))


class Counter(Layer):
  """y = x * (1 + count / 8); state: count of calls (a non-reversible stateful f)."""

  def forward(self, x, weights, state, rng):
    return x * (1.0 + state / 8.0), state + 1

  def init_weights_and_state(self, input_signature, rng):
    return (), jnp.full((), 2, jnp.int32)


# ----- the pieces -----
def test_half_residual_adds_f_of_x2_to_x1():
  layer = tl.ReversibleHalfResidual(tl.Dense(D))
  x1, x2 = pair((3, D))
  (w, b), = layer.init((x1, x2))[0][0]
  y1, y2 = layer((x1, x2))
  np.testing.assert_allclose(y1, x1 + x2 @ w + b, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(y2, x2)


def test_half_residual_with_attention_layer_runs_layers_then_attention():
  attention = tl.CausalAttention(D, n_heads=2)
  layer = tl.ReversibleHalfResidual(tl.LayerNorm(), attention_layer=attention)
  x = pair((2, 6, D))
  weights, state = layer.init(x)
  (w_norm, w_attn), = weights
  f = tl.Serial(tl.LayerNorm(), attention)
  expected = x[0] + f.pure_fn(x[1], (w_norm, w_attn), state[0])[0]
  np.testing.assert_allclose(layer.pure_fn(x, weights, state)[0][0], expected, rtol=1e-5,
                             atol=1e-5)


def test_swap_and_select_permute_and_reverse():
  x = tuple(random_array((2,), i) for i in range(3))
  select = tl.ReversibleSelect([2, 0, 1])
  y, _ = select.pure_fn(x, (), ())
  assert [v is x[i] for v, i in zip(y, [2, 0, 1])] == [True] * 3
  assert all(a is b for a, b in zip(select.reverse(y), x))
  assert tl.ReversibleSwap().pure_fn(x[:2], (), ())[0] == (x[1], x[0])


def test_select_must_be_a_permutation():
  with pytest.raises(ValueError, match=r'ReversibleSelect\[0, 0\].*permutation'):
    tl.ReversibleSelect([0, 0])


def test_serial_rejects_non_reversible_sublayer_by_name():
  with pytest.raises(TypeError, match=r'sublayer 2 \(Dense_4, Dense\) is not a ReversibleLayer'):
    tl.ReversibleSerial(tl.ReversibleHalfResidual(tl.Dense(4)), tl.ReversibleSwap(), tl.Dense(4))


def test_serial_arity_counts_passthrough_values():
  layer = tl.ReversibleSerial(
      tl.ReversibleHalfResidual(attention_layer=tl.CausalAttention(D, 2, use_mask=True)),
      tl.ReversibleSwap())
  assert (layer.n_in, layer.n_out) == (3, 3)


# ----- reconstruction -----
def test_reverse_reconstructs_inputs_of_a_deep_stack():
  layers = ff_blocks(12) + ff_blocks(1, dropout=0.2) + [ScaleCounter()]
  rev = tl.ReversibleSerial(layers)
  x = pair((2, 8, D))
  weights, state = rev.init(x)
  rng = jax.random.key(7)
  y, new_state = jax.jit(rev.pure_fn)(x, weights, state, rng)
  reverse = jax.jit(rev.reverse)
  x_back = reverse(y, weights, state, new_state, rng)
  for a, b in zip(x_back, x):
    scale = np.max(np.abs(b))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale)
  # A different rng replays different dropout masks: reconstruction must then fail.
  wrong = reverse(y, weights, state, new_state, jax.random.key(8))
  assert np.max(np.abs(wrong[0] - x[0])) > 1e-2


# ----- gradients equal plain backprop -----
def test_grads_equal_plain_stack_with_dropout_in_train_mode():
  layers, x = ff_blocks(2, dropout=0.4), pair((2, 5, D))
  rev, plain = tl.ReversibleSerial(layers), tl.Serial(layers)
  weights, state = rev.init(x, rng=jax.random.key(1))
  g = run(rev, x, weights, state, jax.random.key(3))[2]
  assert_trees_close(g, run(plain, x, weights, state, jax.random.key(3))[2])
  assert_trees_close(run(rev, x, weights, state, jax.random.key(3))[2], g, rtol=0, atol=0)
  other = run(rev, x, weights, state, jax.random.key(4))[2]  # Other masks, other grads.
  assert np.max(np.abs(other[1][0] - g[1][0])) > 1e-2


def test_grads_equal_plain_stack_with_state_replayed():
  # Both a stateful ReversibleLayer and stateful layers inside f: the backward must use
  # the state the forward got, not the new one.
  layers = [tl.ReversibleHalfResidual(tl.PositionalEncoding(max_len=32, mode='predict'),
                                      Counter(), tl.Dense(D)),
            ScaleCounter(), tl.ReversibleSwap(),
            tl.ReversibleHalfResidual(Counter(), tl.LayerNorm(), tl.Dense(D)),
            tl.ReversibleSwap()]
  x = pair((2, 4, D))
  assert_same_grads_as_plain(layers, x)
  rev = tl.ReversibleSerial(layers)
  weights, state = rev.init(x)
  _, new_state = rev.pure_fn(x, weights, state)
  assert int(new_state[0][0][0]) == 4 and int(new_state[0][0][1]) == 3
  assert int(new_state[1]) == 2


def test_grads_equal_plain_stack_with_causal_attention_and_mask_passthrough():
  # The bool mask rides below x2 on the stack: (x1, x2, mask); it gets a float0 cotangent.
  attention = tl.CausalAttention(D, n_heads=2, use_mask=True)
  layers = [tl.ReversibleHalfResidual(tl.LayerNorm(), attention_layer=attention),
            tl.ReversibleSwap(), tl.ReversibleHalfResidual(*ff()), tl.ReversibleSwap()]
  x1, x2 = pair((2, 6, D))
  mask = np.array([[True] * 6, [True] * 4 + [False] * 2])
  grads = assert_same_grads_as_plain(layers, (x1, x2, mask))[2]
  assert grads[1][2].dtype == jax.dtypes.float0


def test_grads_equal_plain_stack_with_lsh_attention():
  if not hasattr(tl, 'LSHSelfAttention'):
    pytest.skip('LSHSelfAttention not available')
  attention = tl.LSHSelfAttention(D, n_heads=1, n_hashes=2, n_buckets=4, chunk_len=4,
                                  causal=True)
  layers = [tl.ReversibleHalfResidual(tl.LayerNorm(), attention_layer=attention),
            tl.ReversibleSwap()]
  assert_same_grads_as_plain(layers, pair((2, 8, D)), rng=jax.random.key(2))


def test_nested_in_serial_with_chunked_feed_forward():
  def model(body):
    return tl.Serial(tl.Dense(D), tl.Dup(), body, tl.Add(), tl.Dense(3))
  chunked = tl.Chunk(tl.Serial(tl.Dense(32), tl.Relu(), tl.Dense(D)), 2)
  layers = [tl.ReversibleHalfResidual(tl.LayerNorm(), chunked), tl.ReversibleSwap()]
  rev, plain = model(tl.ReversibleSerial(layers)), model(tl.Serial(layers))
  x = random_array((5, 3, 8))
  weights, state = rev.init(x)
  rng = jax.random.key(4)
  assert_trees_close(run(rev, x, weights, state, rng), run(plain, x, weights, state, rng))


def test_nested_reversible_serials():
  inner = tl.ReversibleSerial(ff_blocks(2))
  assert_same_grads_as_plain([inner, tl.ReversibleHalfResidual(tl.Dense(D))], pair((3, D)))


def test_eval_mode_matches_plain_without_rng():
  attention = tl.CausalAttention(D, 2, dropout=0.5, mode='eval')
  layers = [tl.ReversibleHalfResidual(tl.LayerNorm(), attention_layer=attention),
            tl.ReversibleSwap(),
            tl.ReversibleHalfResidual(tl.Dense(D), tl.Dropout(0.5, mode='eval')),
            tl.ReversibleSwap()]
  rev, plain = tl.ReversibleSerial(layers), tl.Serial(layers)
  x = pair((2, 6, D))
  weights, state = rev.init(x)
  y = jax.jit(rev.pure_fn)(x, weights, state, None)[0]
  assert_trees_close(y, jax.jit(plain.pure_fn)(x, weights, state, None)[0], rtol=1e-6, atol=1e-6)


def test_reverse_error_names_the_layer_path():
  class NoReverse(tl.ReversibleLayer):
    def forward(self, x, weights, state, rng):
      return x * 2.0, state
  layer = tl.ReversibleSerial(tl.ReversibleHalfResidual(tl.Dense(D)), NoReverse())
  x = pair((2, D))[0]
  weights, state = layer.init((x, x))
  with pytest.raises(tl.LayerError, match=r'ReversibleSerial/NoReverse\[1\] \(reverse_and_grad\)'):
    jax.grad(lambda x: jnp.sum(layer.pure_fn((x, x), weights, state)[0][0]))(x)
  layer2 = tl.ReversibleSerial(NoReverse())
  weights, state = layer2.init(x)
  with pytest.raises(tl.LayerError, match='NoReverse: reverse is not implemented'):
    layer2.reverse(x, weights, state, state)


# ----- memory -----
def _grad_temp_bytes(layer, d, length):
  sig = (tl.ShapeDtype((1, length, d)),) * 2
  weights, state = jax.eval_shape(lambda: layer.init(sig))
  def loss(w, x):
    y, _ = layer.pure_fn(x, w, state, None)
    return jnp.sum(y[0] * y[1])
  x = tuple(jax.ShapeDtypeStruct(s.shape, s.dtype) for s in sig)
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(weights, x).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def _ff_stack(n, d):
  out = []
  for _ in range(n):
    out += [tl.ReversibleHalfResidual(tl.LayerNorm(), tl.Dense(4 * d), tl.Relu(), tl.Dense(d)),
            tl.ReversibleSwap()]
  return out


def _memory_table(ns, plain_ns, d=256, length=512):
  rev = {n: _grad_temp_bytes(tl.ReversibleSerial(_ff_stack(n, d)), d, length) for n in ns}
  plain = {n: _grad_temp_bytes(tl.Serial(_ff_stack(n, d)), d, length) for n in plain_ns}
  for n in sorted(set(ns) | set(plain_ns)):
    mib = lambda t: f'{t[n] / 2**20:7.2f} MiB' if n in t else '      -    '
    print(f'FF blocks={n:2d} d={d} L={length}: temp reversible {mib(rev)}, plain {mib(plain)}')
  return rev, plain


def test_memory_flat_with_depth_for_reversible_grows_for_plain():
  rev, plain = _memory_table([2, 16], [2, 8])
  assert rev[16] <= 1.5 * rev[2]
  assert plain[8] > 2.5 * plain[2]
  assert plain[8] > 3 * rev[16]


@pytest.mark.slow
def test_memory_plain_stack_grows_linearly_to_16_blocks():
  rev, plain = _memory_table([2, 16], [2, 16])
  assert rev[16] <= 1.5 * rev[2]
  assert plain[16] > 3 * plain[2]


def _attention_stack(n, d, length):
  """n Reformer-like layers: chunked causal attention and feed-forward half-residuals."""
  out = []
  for _ in range(n):
    out += [tl.ReversibleHalfResidual(
                tl.LayerNorm(), attention_layer=tl.ChunkedCausalAttention(d, 2, chunk_len=128)),
            tl.ReversibleSwap(),
            tl.ReversibleHalfResidual(tl.LayerNorm(), tl.Dense(2 * d), tl.Relu(), tl.Dense(d)),
            tl.ReversibleSwap()]
  return tl.ReversibleSerial(out)


def test_memory_flat_with_depth_for_attention_stack():
  # Without an optimization barrier per layer in the backward pass, XLA merged each
  # layer's recomputation with the forward pass (CSE) and kept forward intermediates
  # alive: ~2.3 activations more per layer (d=64, L=8192: 90 -> 104 MiB, 1 -> 4 layers).
  d, length = 64, 4096
  one, four = (_grad_temp_bytes(_attention_stack(n, d, length), d, length) for n in (1, 4))
  activation = length * d * 4
  print(f'chunked-attention layers 1 -> 4: {one / 2**20:.1f} -> {four / 2**20:.1f} MiB')
  assert four - one < 3 * activation
