"""Deterministic ReLU features (nb_features=None): LRA's Performer, against an exact reference.

phi(x) = relu(x / d^(1/4)) + eps on the queries and keys themselves; attention weights
phi(q_i) . phi(k_j) over the real (and, causal, earlier) keys, normalized. No random
projection, so train and eval agree and no rng is needed.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention import CausalFavorAttention, FavorAttention, FavorKind
from plait.layers.attention.favor_features import favor_features
from plait.models.performer import PerformerEncoder
from plait.shapes import ShapeDtype
from tests.conftest import random_array

B, H, L, D, EPS = 2, 2, 13, 8, 1e-3


def exact(q, k, v, mask, causal):
  """The same attention written out: (B, H, L, D) arrays, mask (B, L)."""
  phi = lambda x: jax.nn.relu(x * D ** -0.25) + EPS
  weights = jnp.einsum('bhid,bhjd->bhij', phi(q), phi(k))
  allowed = jnp.broadcast_to(mask[:, None, None, :], weights.shape)
  if causal:
    allowed = allowed & jnp.tril(jnp.ones((L, L), bool))
  weights = jnp.where(allowed, weights, 0.0)
  den = weights.sum(-1, keepdims=True)
  return (weights @ v) / jnp.where(den > 0, den, 1.0)


def inputs(seed=0):
  q, k, v = (random_array((B, H, L, D), seed + i) for i in range(3))
  mask = np.random.default_rng(seed).random((B, L)) < 0.75
  mask[:, 0] = True
  return q, k, v, mask


CASES = [(False, 'xla'), (True, 'xla'), (True, 'interpret')]


@pytest.mark.parametrize('causal,implementation', CASES)
def test_values_and_gradients_equal_the_exact_reference(causal, implementation):
  q, k, v, mask = inputs()
  kind = FavorKind(None, 'relu', causal=causal, numerical_stabilizer=EPS, chunk_size=16,
                   implementation=implementation)
  def loss(attend):
    return lambda q, k, v: jnp.sum(jnp.sin(attend(q, k, v)))
  ours = lambda q, k, v: kind.attend_batched(q, k, v, mask, (), None, 'train')[0]
  theirs = lambda q, k, v: exact(q, k, v, jnp.asarray(mask), causal)
  np.testing.assert_allclose(jax.jit(ours)(q, k, v), theirs(q, k, v), rtol=1e-5, atol=1e-5)
  got = jax.jit(jax.grad(loss(ours), argnums=(0, 1, 2)))(q, k, v)
  want = jax.grad(loss(theirs), argnums=(0, 1, 2))(q, k, v)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_train_needs_no_rng_and_equals_eval():
  layer = lambda mode: FavorAttention(16, n_heads=2, nb_features=None, kernel='relu', mode=mode)
  x = random_array((2, 10, 16), 3)
  weights, state = layer('train').init(ShapeDtype(x.shape))
  train = jax.jit(layer('train').pure_fn)(x, weights, state, None)[0]
  evaluated = jax.jit(layer('eval').pure_fn)(x, weights, state, None)[0]
  np.testing.assert_allclose(train, evaluated, rtol=1e-6, atol=1e-6)


def test_predict_one_token_per_call_equals_causal_eval():
  make = lambda mode: CausalFavorAttention(16, n_heads=2, nb_features=None, kernel='relu',
                                           mode=mode, max_len=12)
  x = random_array((2, 10, 16), 4)
  weights, _ = make('eval').init(ShapeDtype(x.shape))
  expected = jax.jit(make('eval').pure_fn)(x, weights, (), None)[0]
  step = jax.jit(make('predict').pure_fn)
  _, state = make('predict').init(ShapeDtype(x.shape))
  outputs = []
  for t in range(10):
    y, state = step(x[:, t:t + 1], weights, state, None)
    outputs.append(y)
  np.testing.assert_allclose(np.concatenate(outputs, axis=1), expected, rtol=1e-5, atol=1e-5)
  assert state[0].shape == (2, 2, 8, 8)   # running sums of width d_head: no projection


def test_encoder_compacts_exactly_with_deterministic_features():
  """PerformerEncoder(nb_features=None, kernel='relu'): compact_to gives the same logits."""
  tokens = np.random.default_rng(5).integers(1, 20, (3, 32))
  tokens[np.random.default_rng(6).random((3, 32)) < 0.6] = 0
  kw = dict(vocab_size=20, n_classes=3, d_model=16, d_ff=16, n_layers=2, n_heads=2, max_len=32,
            nb_features=None, kernel='relu', pad_id=0, mode='eval')
  full, compact = PerformerEncoder(**kw), PerformerEncoder(compact_to=16, **kw)
  weights, state = full.init(ShapeDtype(tokens.shape, jnp.int32))
  want = jax.jit(full.pure_fn)(tokens, weights, state, None)[0]
  got = jax.jit(compact.pure_fn)(tokens, weights, state, None)[0]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_deterministic_features_need_the_relu_kernel():
  with pytest.raises(ValueError, match="nb_features=None .* needs kernel='relu'"):
    FavorKind(None, 'softmax')
  with pytest.raises(ValueError, match="projection=None .* needs kernel='relu'"):
    favor_features(random_array((4, 8), 0), None, 'softmax')
  with pytest.raises(ValueError, match="kernel='relu' has only the XLA"):
    FavorKind(None, 'relu', implementation='pallas')


@pytest.mark.skipif(jax.default_backend() != 'gpu', reason='the Pallas kernel on a GPU')
def test_causal_prefix_sum_kernel_on_the_gpu_matches_the_reference_in_bf16():
  """Run by the GPU suite (gpu_paths): the kernel with m = d_head features, lowered for real."""
  q, k, v, mask = inputs(7)
  kind = FavorKind(None, 'relu', causal=True, numerical_stabilizer=EPS, chunk_size=16,
                   implementation='pallas')
  half = lambda t: t.astype(jnp.bfloat16)
  def loss(attend):
    return lambda q, k, v: jnp.sum(jnp.sin(attend(q, k, v).astype(jnp.float32)))
  ours = lambda q, k, v: kind.attend_batched(half(q), half(k), half(v), mask, (), None,
                                             'train')[0]
  theirs = lambda q, k, v: exact(q, k, v, jnp.asarray(mask), True)
  got, want = jax.jit(ours)(q, k, v).astype(jnp.float32), theirs(q, k, v)
  assert float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want))) < 2e-2
  for g, w in zip(jax.jit(jax.grad(loss(ours), argnums=(0, 1, 2)))(q, k, v),
                  jax.grad(loss(theirs), argnums=(0, 1, 2))(q, k, v)):
    assert float(jnp.max(jnp.abs(g - w)) / jnp.max(jnp.abs(w))) < 3e-2
