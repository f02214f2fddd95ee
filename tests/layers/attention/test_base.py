"""The shared attention path (`Attention`): projections, heads, batching, rng, state, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from plait.layers.attention import (
    Attention, AttentionKind, CausalAttention, ChunkedCausalAttention, ChunkedKind,
    DotProductKind, ProjectionWeights, SelfAttention, vmap_pairs)
from plait.layers.attention.reference import reference_attention
from plait.shapes import ShapeDtype
from tests.conftest import random_array
from tests.layers.attention.conftest import numpy_multihead, randomize_biases

B, L, D, H = 2, 7, 12, 3


class NoiseKind(AttentionKind):
  """out = v + noise(rng): shows which rng each (batch, head) pair received."""

  def attend(self, q, k, v, mask, state, rng, mode):
    return v + jax.random.normal(rng, v.shape), state


class CountingKind(AttentionKind):
  """Keeps a per-pair counter of positions seen; out = q."""

  def init_state(self, batch_size, n_heads, length, d_head, dtype, mode):
    return (jnp.zeros((), jnp.int32), jnp.zeros((d_head,), dtype))

  def attend(self, q, k, v, mask, state, rng, mode):
    return q, (state[0] + q.shape[0], state[1] + q.sum(0))


class SharedQKKind(AttentionKind):
  """Exact attention with keys = queries (what LSH does before hashing)."""
  shared_qk = True

  def attend(self, q, k, v, mask, state, rng, mode):
    assert k is None
    return reference_attention(q, q, v, mask=mask), state


def init(layer, x, mask=None, seed=0):
  sig = ShapeDtype(x.shape) if mask is None else (ShapeDtype(x.shape), ShapeDtype(mask.shape, bool))
  return layer.init(sig, rng=jax.random.key(seed))


def test_self_attention_equals_handwritten_multihead():
  layer = SelfAttention(D, n_heads=H, mode='eval')
  x = random_array((B, L, D), 1)
  weights, state = init(layer, x)
  weights = randomize_biases(weights)
  y, _ = jax.jit(layer.pure_fn)(x, weights, state)
  np.testing.assert_allclose(y, numpy_multihead(x, weights, H), atol=1e-5, rtol=1e-5)


def test_causal_attention_with_mask_equals_handwritten_multihead():
  layer = CausalAttention(D, n_heads=H, use_mask=True, mode='eval')
  x = random_array((B, L, D), 1)
  mask = np.random.default_rng(2).random((B, L)) < 0.7
  mask[:, 0] = True  # Every query sees a key (rows without one are tested in test_dense).
  weights, state = init(layer, x, mask)
  weights = randomize_biases(weights)
  (y, mask_out), _ = jax.jit(layer.pure_fn)((x, mask), weights, state)
  expected = numpy_multihead(x, weights, H, mask=mask, allowed=np.tril(np.ones((L, L), bool)))
  np.testing.assert_allclose(y, expected, atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(mask_out, mask)


def test_explicit_d_head_sets_projection_sizes():
  layer = SelfAttention(D, n_heads=2, d_head=5, mode='eval')
  x = random_array((B, L, D), 1)
  weights, state = init(layer, x)
  assert weights.q.kernel.shape == (D, 10) and weights.o.kernel.shape == (10, D)
  y, _ = jax.jit(layer.pure_fn)(x, weights, state)
  np.testing.assert_allclose(y, numpy_multihead(x, weights, 2), atol=1e-5, rtol=1e-5)


def test_shared_qk_kind_has_no_key_projection():
  layer = Attention(SharedQKKind(), D, n_heads=H, mode='eval')
  x = random_array((B, L, D), 1)
  weights, state = init(layer, x)
  assert weights.k is None
  y, _ = jax.jit(layer.pure_fn)(x, weights, state)
  as_full = weights._replace(k=weights.q)  # keys = queries
  np.testing.assert_allclose(y, numpy_multihead(x, as_full, H), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('kind', [DotProductKind(causal=True), ChunkedKind(3)])
def test_head_chunking_equals_no_chunking(kind):
  x = random_array((B, L, D), 1)
  whole = Attention(kind, D, n_heads=4, d_head=2, mode='eval')
  chunked = Attention(kind, D, n_heads=4, d_head=2, head_chunk_size=2, mode='eval')
  weights, state = init(whole, x)
  np.testing.assert_allclose(jax.jit(chunked.pure_fn)(x, weights, state)[0],
                             jax.jit(whole.pure_fn)(x, weights, state)[0], atol=1e-6)


def test_head_chunking_keeps_each_pairs_rng():
  x = random_array((B, L, D), 1)
  whole = Attention(NoiseKind(), D, n_heads=4, d_head=2, mode='eval')
  chunked = Attention(NoiseKind(), D, n_heads=4, d_head=2, head_chunk_size=1, mode='eval')
  weights, state = init(whole, x)
  rng = jax.random.key(5)
  np.testing.assert_allclose(jax.jit(chunked.pure_fn)(x, weights, state, rng)[0],
                             jax.jit(whole.pure_fn)(x, weights, state, rng)[0], atol=1e-6)


def test_each_batch_element_and_head_gets_a_distinct_rng():
  layer = Attention(NoiseKind(), D, n_heads=H, use_bias=False, mode='eval')
  x = np.broadcast_to(random_array((1, L, D), 1), (B, L, D))  # Same input in every row.
  weights, state = init(layer, x)
  identity = weights._replace(o=ProjectionWeights(jnp.eye(D)))
  y, _ = jax.jit(layer.pure_fn)(x, identity, state, jax.random.key(3))
  noise = np.asarray(y - jnp.dot(x, weights.v.kernel)).reshape(B, L, H, D // H)
  pairs = noise.transpose(0, 2, 1, 3).reshape(B * H, -1)
  assert len({tuple(np.round(p, 5)) for p in pairs}) == B * H


def test_vmap_pairs_gives_each_pair_its_slice_and_each_head_its_shared_value():
  q, v = random_array((B, H, L, 2), 1), random_array((B, H, L, 2), 2)
  per_pair = random_array((B, H), 3)
  per_head = random_array((H, 2), 4)
  mask = np.random.default_rng(5).random((B, L)) < 0.5
  state = random_array((B, H), 6)
  def one(q1, k1, v1, m1, s1, pair1, head1):
    assert k1 is None and q1.shape == (L, 2) and m1.shape == (L,) and head1.shape == (2,)
    return q1 * pair1 + v1 * head1 + m1[:, None], s1 + pair1
  out, new_state = vmap_pairs(one, q, None, v, mask, state, per_pair=per_pair, per_head=per_head)
  expected = (q * per_pair[..., None, None] + v * per_head[None, :, None, :]
              + mask[:, None, :, None])
  np.testing.assert_allclose(out, expected, atol=1e-6)
  np.testing.assert_allclose(new_state, state + per_pair, atol=1e-6)


def test_state_gets_leading_batch_and_head_axes_and_is_threaded():
  layer = Attention(CountingKind(), D, n_heads=H, mode='eval')
  x = random_array((B, L, D), 1)
  weights, state = init(layer, x)
  assert state[0].shape == (B, H) and state[1].shape == (B, H, D // H)
  _, state = layer.pure_fn(x, weights, state)
  _, state = layer.pure_fn(x, weights, state)
  np.testing.assert_array_equal(state[0], np.full((B, H), 2 * L))


def test_output_signature_matches_inputs():
  layer = CausalAttention(D, n_heads=H, use_mask=True)
  out = layer.output_signature((ShapeDtype((B, L, D)), ShapeDtype((B, L), bool)))
  assert out[0].shape == (B, L, D) and out[1].shape == (B, L)


def test_jit_and_vmap_give_the_eager_result():
  layer = CausalAttention(D, n_heads=H, mode='eval')
  x = random_array((3, B, L, D), 1)
  weights, state = init(layer, x[0])
  eager = np.stack([layer.pure_fn(xi, weights, state)[0] for xi in x])
  jitted = jax.jit(lambda xi: layer.pure_fn(xi, weights, state)[0])
  vmapped = jax.vmap(lambda xi: layer.pure_fn(xi, weights, state)[0])
  np.testing.assert_allclose(jitted(x[0]), eager[0], atol=1e-6)
  np.testing.assert_allclose(vmapped(x), eager, atol=1e-6)


@pytest.mark.parametrize('make', [
    lambda: CausalAttention(4, n_heads=2, use_mask=True, mode='eval'),
    lambda: SelfAttention(4, n_heads=2, use_mask=True, mode='eval'),
    lambda: ChunkedCausalAttention(4, n_heads=2, chunk_len=2, n_chunks_before=1, use_mask=True,
                                   mode='eval')], ids=['causal', 'self', 'chunked'])
def test_gradients_match_finite_differences_in_float64(make):
  # Length 5 with chunk_len 2: a partial last chunk, a window that drops chunk 0 for the
  # last queries, and a padded key in the middle.
  layer = make()
  x = random_array((1, 5, 4), 1)
  mask = np.array([[True, True, False, True, True]])
  weights, state = init(layer, x, mask)
  weights = randomize_biases(weights)
  with jax.enable_x64():
    x64, w64 = jax.tree_util.tree_map(lambda t: jnp.asarray(t, jnp.float64), (x, weights))
    f = jax.jit(lambda x, w: layer.pure_fn((x, mask), w, state)[0][0])
    assert f(x64, w64).dtype == jnp.float64
    check_grads(f, (x64, w64), order=1, modes=['rev'], eps=1e-6, atol=1e-6, rtol=1e-6)


def test_dropout_applies_only_in_train_mode_and_needs_rng():
  x = random_array((B, L, D), 1)
  train = SelfAttention(D, n_heads=H, dropout=0.5, mode='train')
  weights, state = init(train, x)
  y_eval, _ = jax.jit(SelfAttention(D, n_heads=H, dropout=0.5, mode='eval').pure_fn)(
      x, weights, state)
  y_train, _ = jax.jit(train.pure_fn)(x, weights, state, jax.random.key(1))
  zeros = np.isclose(np.asarray(y_train), 0.0)
  assert 0.3 < zeros.mean() < 0.7
  np.testing.assert_allclose(np.asarray(y_train)[~zeros], 2 * np.asarray(y_eval)[~zeros],
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(Exception, match='needs an rng'):
    train.pure_fn(x, weights, state, None)


# ----- errors -----
def test_d_model_not_divisible_by_heads_is_a_clear_error():
  with pytest.raises(ValueError, match=r'd_model=10 is not divisible by n_heads=3'):
    SelfAttention(10, n_heads=3)


def test_head_chunk_size_must_divide_heads():
  with pytest.raises(ValueError, match=r'head_chunk_size=3 must divide n_heads=4'):
    SelfAttention(8, n_heads=4, head_chunk_size=3)


def test_kind_must_be_an_attention_kind():
  with pytest.raises(TypeError, match='must be an AttentionKind'):
    Attention(lambda q, k, v: q, 8)


def test_wrong_mask_shape_names_both_shapes():
  layer = SelfAttention(D, n_heads=H, use_mask=True, mode='eval')
  x = random_array((B, L, D), 1)
  weights, state = init(layer, x, np.ones((B, L), bool))
  with pytest.raises(Exception, match=r'mask must have shape \(batch, length\) = \(2, 7\), '
                                      r'got \(2, 6\)'):
    layer.pure_fn((x, np.ones((B, L - 1), bool)), weights, state)


def test_wrong_feature_size_names_the_expected_shape():
  layer = SelfAttention(D, n_heads=H, mode='eval')
  with pytest.raises(Exception, match=r'expected x of shape \(batch, length, d_model=12\), '
                                      r'got \(2, 7, 8\)'):
    layer.init(ShapeDtype((B, L, 8)))


def test_predict_prompt_longer_than_max_len_is_a_clear_error():
  layer = CausalAttention(D, n_heads=H, max_len=4, mode='predict')
  x = random_array((B, 6, D), 1)
  weights, state = layer.init(ShapeDtype((B, 1, D)))
  with pytest.raises(Exception, match=r'length 6 exceeds max_len=4'):
    layer.pure_fn(x, weights, state)


def test_weights_are_named_q_k_v_o_each_with_kernel_and_bias():
  weights, _ = init(SelfAttention(D, n_heads=H, mode='eval'), random_array((B, L, D), 1))
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(weights)[0]]
  assert paths == [f'.{w}.{part}' for w in 'qkvo' for part in ('kernel', 'bias')]
  no_bias, _ = init(Attention(SharedQKKind(), D, n_heads=H, use_bias=False, mode='eval'),
                    random_array((B, L, D), 1))
  assert no_bias.k is None and no_bias.q.bias is None
  assert [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(no_bias)[0]
          ] == ['.q.kernel', '.v.kernel', '.o.kernel']


def test_a_models_weight_paths_name_the_attention_projections():
  from plait import models  # pylint: disable=import-outside-toplevel
  model = models.TransformerLM(vocab_size=16, d_model=8, d_ff=16, n_layers=1, n_heads=2)
  weights, _ = jax.eval_shape(
      lambda: model.init_guarded(ShapeDtype((1, 4), jnp.int32), jax.random.key(0))[:2])
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(weights)[0]]
  for name in ('q', 'k', 'v', 'o'):
    assert any(p.endswith(f'.{name}.kernel') for p in paths), (name, paths)
