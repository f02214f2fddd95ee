"""FAVOR+ (Performer): approximation of softmax, padding masks, redraw policy, decoding."""
import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention import (
    AttentionWeights, CausalFavorAttention, FavorAttention, FavorKind, ProjectionWeights)
from plait.layers.attention.reference import reference_attention
from plait.layers.attention.favor_features import fixed_orthogonal_features
from plait.layers.base import LayerError
from plait.shapes import ShapeDtype
from tests.conftest import random_array
from tests.gpu_lowering import live_pallas_calls
from tests.layers.attention.test_favor_causal import attend, naive_favor

L, DH = 10, 4


def qkv(seed=0, shape=(L, DH), scale=0.7):
  q, k, v = (random_array(shape, seed + i) for i in range(3))
  return q * scale, k * scale, v


def eval_kind(causal, m=16, kernel='softmax', seed=0):
  return FavorKind(m, kernel, causal=causal, redraw=False, feature_seed=seed, chunk_size=4)


@pytest.mark.parametrize('causal', [False, True])
def test_error_vs_exact_softmax_decreases_with_nb_features(causal):
  errors = []
  for m in (16, 256, 4096):
    per_seed = []
    kind = eval_kind(causal, m)
    for seed in range(4):   # Other inputs and other fixed features for each seed.
      q, k, v = qkv(10 * seed, (16, 8), scale=0.5)
      out = attend(kind, q, k, v, projection=fixed_orthogonal_features(seed, m, 8))
      ref = reference_attention(q, k, v, causal=causal)
      per_seed.append(np.linalg.norm(out - ref) / np.linalg.norm(ref))
    errors.append(np.mean(per_seed))
  assert errors[0] > errors[1] > errors[2], errors
  assert errors[2] < 0.06, errors


@pytest.mark.parametrize('kernel', ['softmax', 'relu'])
def test_bidirectional_equals_naive_reference_of_the_same_kernel(kernel):
  q, k, v = qkv(1)
  mask = np.random.default_rng(2).random(L) < 0.7
  kind = eval_kind(False, kernel=kernel)
  expected = naive_favor(q, k, v, mask, kind, kind.projection(None, DH, 'eval'), causal=False)
  np.testing.assert_allclose(attend(kind, q, k, v, mask), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('causal', [False, True])
def test_padded_positions_change_nothing_and_match_the_real_keys_alone(causal):
  q, k, v = qkv(3)
  mask = np.random.default_rng(4).random(L) < 0.6
  mask[0] = True
  kind = eval_kind(causal)
  out = attend(kind, q, k, v, mask)
  k2, v2 = k.copy(), v.copy()
  k2[~mask], v2[~mask] = 5.0 * random_array((2, (~mask).sum(), DH), 7)
  np.testing.assert_array_equal(attend(kind, q, k2, v2, mask), out)
  if causal:   # Dropping the padding altogether gives the same outputs at real positions.
    np.testing.assert_allclose(out[mask], attend(kind, q[mask], k[mask], v[mask]), atol=1e-5)
  else:
    np.testing.assert_allclose(out, attend(kind, q, k[mask], v[mask]), atol=1e-5)


@pytest.mark.parametrize('causal', [False, True])
def test_queries_that_see_no_real_key_output_zero(causal):
  q, k, v = qkv(5)
  mask = np.ones(L, bool)
  mask[:3] = False
  out = attend(eval_kind(causal), q, k, v, mask)
  if causal:
    np.testing.assert_array_equal(out[:3], 0.0)
  np.testing.assert_array_equal(attend(eval_kind(causal), q, k, v, np.zeros(L, bool)), 0.0)
  assert np.all(np.isfinite(out))


def test_attend_batched_equals_vmapped_attend_with_fixed_features():
  q, k, v = (random_array((2, 3, L, DH), i) for i in range(3))
  mask = np.random.default_rng(6).random((2, L)) < 0.8
  kind = eval_kind(True)
  batched, _ = jax.jit(lambda *a: kind.attend_batched(*a, (), None, 'eval'))(q, k, v, mask)
  one = lambda q1, k1, v1, m1: kind.attend(q1, k1, v1, m1, (), None, 'eval')[0]
  vmapped = jax.jit(jax.vmap(jax.vmap(one, (0, 0, 0, None)), (0, 0, 0, 0)))(q, k, v, mask)
  np.testing.assert_allclose(batched, vmapped, rtol=1e-6, atol=1e-6)


def test_redrawn_features_are_per_head_shared_across_batch_and_follow_the_rng():
  q, k, v = (np.broadcast_to(random_array((1, 1, L, DH), i), (2, 2, L, DH)) for i in range(3))
  kind = FavorKind(8, causal=False, redraw=True)
  keys = jax.random.split(jax.random.key(0), 4).reshape(2, 2)
  run = jax.jit(lambda keys: kind.attend_batched(q, k, v, None, (), keys, 'train')[0])
  out = np.asarray(run(keys))
  np.testing.assert_array_equal(out[0], out[1])              # Same features across batch.
  assert np.abs(out[:, 0] - out[:, 1]).max() > 1e-4           # Different per head.
  np.testing.assert_array_equal(run(keys), out)               # Same rng, same result.
  assert np.abs(run(keys[::-1, ::-1]) - out).max() > 1e-4     # New rng, new features.


def _layer_and_input(mode, causal=True, redraw=True, **kw):
  """A small FAVOR+ layer, an input (2, 10, 16), weights with random biases, and state."""
  make = CausalFavorAttention if causal else FavorAttention
  layer = make(16, n_heads=2, nb_features=16, redraw=redraw, mode=mode, max_len=12, **kw)
  x = random_array((2, 10, 16), 8)
  state = ()
  if mode == 'predict':  # Only predict mode has state (init's random weights are unused).
    sig = ShapeDtype(x.shape)
    _, state = layer.init((sig, ShapeDtype((2, 10), jnp.bool_)) if kw.get('use_mask') else sig)
  return layer, x, _weights(), state


@functools.lru_cache(maxsize=1)
def _weights():
  """AttentionWeights with random kernels and biases, shared by every layer test here."""
  return AttentionWeights(*(ProjectionWeights(random_array((16, 16), 20 + i),
                                              random_array((16,), 30 + i)) for i in range(4)))


def test_train_mode_redraw_without_rng_is_a_clear_error():
  layer, x, weights, state = _layer_and_input('train', causal=False)
  with pytest.raises(LayerError, match='redraw=True in train mode'):
    layer.pure_fn(x, weights, state, None)


def test_without_redraw_train_uses_the_same_fixed_features_as_eval():
  layer, x, weights, state = _layer_and_input('train', redraw=False)
  eval_layer = _layer_and_input('eval')[0]
  y_train = jax.jit(layer.pure_fn)(x, weights, state, None)[0]
  y_eval = jax.jit(eval_layer.pure_fn)(x, weights, (), None)[0]
  np.testing.assert_allclose(y_train, y_eval, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('kernel', ['softmax', 'relu'])
def test_predict_prompt_then_one_token_per_call_equals_causal_eval(kernel):
  mask = np.ones((2, 10), bool)
  mask[1, :2] = False   # A left-padded prompt.
  layer, x, weights, state = _layer_and_input('predict', use_mask=True, kernel=kernel)
  eval_layer = _layer_and_input('eval', use_mask=True, kernel=kernel)[0]
  expected = jax.jit(eval_layer.pure_fn)((x, mask), weights, (), None)[0][0]
  step = jax.jit(layer.pure_fn)
  outputs = []
  for start, stop in [(0, 5)] + [(t, t + 1) for t in range(5, 10)]:
    (y, _), state = step((x[:, start:stop], mask[:, start:stop]), weights, state, None)
    outputs.append(y)
  np.testing.assert_allclose(np.concatenate(outputs, axis=1), expected, rtol=1e-5, atol=1e-5)
  assert state[0].shape == (2, 2, 16, 8) and int(state[3][0, 0]) == 10


def test_bad_arguments_raise_clear_errors():
  with pytest.raises(ValueError, match='kernel must be one of'):
    FavorKind(kernel='cosine')
  with pytest.raises(ValueError, match='predict mode .* needs causal'):
    FavorKind().check_length(8, 'predict')
  with pytest.raises(ValueError, match='nb_features >= 1'):
    FavorAttention(16, n_heads=2, nb_features=0)


def test_head_chunking_does_not_change_the_output():
  layer, x, weights, _ = _layer_and_input('eval', causal=False, head_chunk_size=1)
  plain = _layer_and_input('eval', causal=False)[0]
  y = jax.jit(layer.pure_fn)(x, weights, (), None)[0]
  np.testing.assert_allclose(y, jax.jit(plain.pure_fn)(x, weights, (), None)[0], atol=1e-6)
  assert repr(layer.kind) == 'Favor' and CausalFavorAttention(16, 2).kind.causal


def _recomputed_and_kept(batch, length, d, m, causal, implementation):
  """{recompute_features: (loss, (dq, dk, dv), bytes the vjp keeps)} for True and False on
  the same bf16 q, k, v (batch, 2 heads, length, d)."""
  q, k, v = (random_array((batch, 2, length, d), i).astype(jnp.bfloat16) for i in range(3))
  mask = np.ones((batch, length), bool)
  results = {}
  for recompute in (True, False):
    kind = FavorKind(m, causal=causal, redraw=False, chunk_size=16,
                     implementation=implementation, recompute_features=recompute)
    def loss(q, k, v, kind=kind):
      out = kind.attend_batched(q, k, v, mask, (), None, 'eval')[0]
      return jnp.sum(out.astype(jnp.float32) * jnp.arange(1, d + 1))   # no column weighted 0
    value, backward = jax.vjp(loss, q, k, v)
    kept = sum(x.nbytes for x in jax.tree.leaves(backward))
    results[recompute] = value, backward(jnp.ones_like(value)), kept
  return results


def test_causal_kernels_keep_the_features_on_request_with_the_same_values():
  """On the causal kernel path (interpret), recompute_features=False keeps the bf16 maps
  for the backward (at least the two maps' bytes more than True) with the same values and
  gradients, bit for bit."""
  length, m = 64, 32
  results = _recomputed_and_kept(1, length, 16, m, causal=True, implementation='interpret')
  two_maps = 2 * 2 * length * m * 2            # query and key features, 2 heads, bf16
  assert results[False][2] >= results[True][2] + two_maps, (results[False][2], results[True][2])
  assert float(results[False][0]) == float(results[True][0])
  for got, want in zip(results[False][1], results[True][1]):
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))


@pytest.mark.parametrize('causal', [False, True])
def test_backward_keeps_inputs_not_the_feature_maps(causal):
  """The (L, m) float32 features are recomputed in the backward: a stack of Performer
  layers keeps per layer about q, k, v, not m / d_head times more (PerformerLM needed ~2.2x
  the memory before). recompute_features=False keeps them, with the same values and
  gradients."""
  length, m = 64, 256
  results = _recomputed_and_kept(2, length, 8, m, causal=causal, implementation='xla')
  one_feature_map = 2 * 2 * length * m * 4
  assert results[True][2] < one_feature_map < results[False][2], (results[True][2],
                                                                 results[False][2])
  assert float(results[True][0]) == float(results[False][0])
  for got, want in zip(results[True][1], results[False][1]):
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                               rtol=1e-2, atol=1e-3)


def _kernel_counts(recompute):
  """{kernel name: calls} in the program of one causal kernel-path (interpret) gradient."""
  q, k, v = (random_array((1, 2, 64, 16), i).astype(jnp.bfloat16) for i in range(3))
  kind = FavorKind(32, causal=True, redraw=False, chunk_size=16, implementation='interpret',
                   recompute_features=recompute)
  def loss(q, k, v):
    out = kind.attend_batched(q, k, v, np.ones((1, 64), bool), (), None, 'eval')[0]
    return jnp.sum(out.astype(jnp.float32))
  jaxpr = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v).jaxpr
  return collections.Counter(eqn.params['name'] for eqn in live_pallas_calls(jaxpr))


def test_recomputed_features_rerun_the_feature_maps_but_not_the_product():
  """recompute_features=True keeps the float32 sums that the normalization's backward
  needs and the keys' max, so the backward reruns the query and key feature maps but not
  the product or the max: the output kernel runs once forward and once per backward product
  (3), and the key-max kernel once, as with the maps kept."""
  recomputed, kept = _kernel_counts(True), _kernel_counts(False)
  assert recomputed['plait_favor_output'] == kept['plait_favor_output'] == 4, (recomputed, kept)
  assert recomputed['plait_favor_states'] == kept['plait_favor_states']
  assert recomputed['plait_favor_key_max_features'] == kept['plait_favor_key_max_features'] == 1
  for name in ('plait_favor_query_features', 'plait_favor_key_features'):
    assert recomputed[name] == 2 * kept[name] == 2, (name, recomputed, kept)
