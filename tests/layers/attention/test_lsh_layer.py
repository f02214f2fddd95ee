"""LSHSelfAttention as a layer: weights, rng rules, masks, bucket replay, gradients."""
import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from plait.layers.attention.lsh import chunked as lc
from plait.layers.attention.lsh import LSHKind, LSHSelfAttention, lsh_buckets
from plait.shapes import ShapeDtype
from tests.conftest import random_array
from tests.layers.attention.conftest import complex_rotate, randomize_biases
from tests.layers.attention.lsh_oracle import shared_qk_oracle, vary_row_norms

B, L, D, H = 2, 16, 16, 2


def build(mode='train', **kw):
  args = dict(n_heads=H, n_hashes=2, n_buckets=4, chunk_len=4, causal=True, mode=mode)
  args.update(kw)
  layer = LSHSelfAttention(D, **args)
  sig = (ShapeDtype((B, L, D)), ShapeDtype((B, L), jnp.bool_)) if args.get('use_mask') else (
      ShapeDtype((B, L, D)))
  weights, state = layer.init(sig, rng=jax.random.key(0))
  return layer, randomize_biases(weights), state


# Built and jitted once, shared by the tests below (compiling the layer costs seconds).
TRAIN, TRAIN_W, TRAIN_S = build()
TRAIN_F = jax.jit(TRAIN.pure_fn)


def heads(x, projection):
  t = (np.asarray(x, np.float64) @ np.asarray(projection.kernel, np.float64)
       + np.asarray(projection.bias))
  return t.reshape(t.shape[0], t.shape[1], H, -1).transpose(0, 2, 1, 3)  # (B, H, L, d)


def test_no_key_projection_and_no_state_outside_predict_mode():
  """Nothing shaped by the batch or the length is kept, so checkpoints restore for any."""
  weights, state = TRAIN_W, TRAIN_S
  assert weights.k is None
  assert state == ()
  y, new_state = TRAIN_F(random_array((B, L, D)), weights, state, jax.random.key(1))
  assert y.shape == (B, L, D) and new_state == ()
  assert build(mode='eval')[2] == ()
  buckets = lsh_buckets(TRAIN, random_array((B, L, D)), weights, jax.random.key(1))
  assert buckets.shape == (B, H, 2, L) and buckets.dtype == jnp.int32
  assert 0 <= int(buckets.min()) and int(buckets.max()) < 4


def test_train_mode_without_rng_raises():
  layer, weights, state = TRAIN, TRAIN_W, TRAIN_S
  with pytest.raises(Exception, match='rng=jax.random.key'):
    layer.pure_fn(random_array((B, L, D)), weights, state, None)


def test_bad_hyperparameters_raise():
  with pytest.raises(ValueError, match='n_buckets'):
    LSHSelfAttention(D, n_buckets=5)
  with pytest.raises(ValueError, match='n_hashes'):
    LSHSelfAttention(D, n_hashes=0)


def test_same_rng_same_result_other_rng_other_buckets():
  weights, state, f = TRAIN_W, TRAIN_S, TRAIN_F
  x = random_array((B, L, D))
  y1, _ = f(x, weights, state, jax.random.key(5))
  y2, _ = f(x, weights, state, jax.random.key(5))
  y3, _ = f(x, weights, state, jax.random.key(6))
  s1, s2, s3 = (lsh_buckets(TRAIN, x, weights, jax.random.key(k)) for k in (5, 5, 6))
  np.testing.assert_array_equal(y1, y2)
  np.testing.assert_array_equal(s1, s2)
  assert not np.array_equal(y1, y3)
  assert not np.array_equal(s1, s3)  # train mode redraws rotations from the rng
  assert not np.array_equal(s1[0, 0], s1[0, 1])  # ... separately per head


def test_eval_mode_ignores_rng():
  layer, weights, state = build(mode='eval')
  f = jax.jit(layer.pure_fn)  # rng=None works too (the one-bucket test below uses it)
  x = random_array((B, L, D))
  y1, _ = f(x, weights, state, jax.random.key(4))
  y2, _ = f(x, weights, state, jax.random.key(3))
  np.testing.assert_array_equal(y1, y2)
  np.testing.assert_array_equal(lsh_buckets(layer, x, weights, jax.random.key(4)),
                                lsh_buckets(layer, x, weights, None))


def one_bucket_oracle(x, weights, normalize_keys=True, rotary=False):
  """The layer's output by the numpy oracle when every token shares one bucket and chunk
  (with `rotary`, the shared queries/keys rotated by position first)."""
  q, v = heads(x, weights.q), heads(x, weights.v)
  if rotary:
    q = complex_rotate(q, np.arange(L))
  per_head = np.stack([np.stack([shared_qk_oracle(q[b, h], v[b, h], causal=True,
                                                  normalize_keys=normalize_keys)[0]
                                 for h in range(H)]) for b in range(B)])
  merged = per_head.transpose(0, 2, 1, 3).reshape(B, L, D)
  return merged @ np.asarray(weights.o.kernel, np.float64) + np.asarray(weights.o.bias)


def test_one_bucket_one_chunk_layer_equals_numpy_shared_qk_attention():
  layer, weights, state = build(mode='eval', n_hashes=1, n_buckets=1, chunk_len=L)
  x = random_array((B, L, D), seed=1)
  y, _ = jax.jit(layer.pure_fn)(x, weights, state, None)
  np.testing.assert_allclose(y, one_bucket_oracle(x, weights), atol=5e-5, rtol=1e-4)


def test_raw_keys_one_bucket_one_chunk_layer_equals_numpy_shared_qk_attention():
  """normalize_keys=False: the queries themselves are the keys. Inputs of varied norms make
  the unit-key oracle far off, so a layer ignoring the option fails."""
  layer, weights, state = build(mode='eval', n_hashes=1, n_buckets=1, chunk_len=L,
                                normalize_keys=False)
  x = vary_row_norms(random_array((B, L, D), seed=1), seed=2)
  y, _ = jax.jit(layer.pure_fn)(x, weights, state, None)
  np.testing.assert_allclose(y, one_bucket_oracle(x, weights, normalize_keys=False),
                             atol=5e-5, rtol=1e-4)
  assert np.abs(np.asarray(y) - one_bucket_oracle(x, weights)).max() > 0.05


@pytest.mark.parametrize('normalize_keys', [True, False])
def test_rotary_one_bucket_one_chunk_layer_equals_numpy_shared_qk_attention(normalize_keys):
  """rotary=True: the rotated queries are the shared keys; the unrotated oracle is far off."""
  layer, weights, state = build(mode='eval', n_hashes=1, n_buckets=1, chunk_len=L,
                                normalize_keys=normalize_keys, rotary=True)
  x = random_array((B, L, D), seed=3)
  y, _ = jax.jit(layer.pure_fn)(x, weights, state, None)
  np.testing.assert_allclose(y, one_bucket_oracle(x, weights, normalize_keys, rotary=True),
                             atol=5e-5, rtol=1e-4)
  assert np.abs(np.asarray(y) - one_bucket_oracle(x, weights, normalize_keys)).max() > 0.01


@pytest.mark.parametrize('bad', [1, 0, 'no', None])
def test_non_bool_normalize_keys_raises_naming_the_kind(bad):
  with pytest.raises(ValueError, match='LSHKind.*normalize_keys'):
    LSHSelfAttention(D, n_heads=H, normalize_keys=bad)
  with pytest.raises(ValueError, match='LSHKind.*normalize_keys'):
    LSHKind(normalize_keys=bad)


def test_padding_mask_real_outputs_ignore_padded_values():
  layer, weights, state = build(use_mask=True, causal=False)
  f = jax.jit(layer.pure_fn)
  x = random_array((B, L, D), seed=2)
  mask = np.ones((B, L), bool)
  mask[0, 11:] = False   # right padding
  mask[1, :3] = False    # left padding
  x2 = np.where(mask[..., None], x, random_array((B, L, D), seed=20))
  (y1, m1), _ = f((x, mask), weights, state, jax.random.key(4))
  (y2, _), _ = f((x2, mask), weights, state, jax.random.key(4))
  np.testing.assert_array_equal(np.asarray(y1)[mask], np.asarray(y2)[mask])
  np.testing.assert_array_equal(m1, mask)
  buckets = np.asarray(lsh_buckets(layer, x, weights, jax.random.key(4), mask))
  padded = np.broadcast_to(~mask[:, None, None, :], buckets.shape)
  assert np.all(buckets[padded] == 4) and np.all(buckets[~padded] < 4)  # padding: n_buckets


def test_lsh_buckets_refuses_other_layers_and_predict_mode():
  from plait.layers import SelfAttention  # pylint: disable=import-outside-toplevel
  dense = SelfAttention(D, n_heads=H)
  with pytest.raises(TypeError, match='lsh_buckets: expected an LSHSelfAttention'):
    lsh_buckets(dense, random_array((B, L, D)), dense.init(ShapeDtype((B, L, D)))[0])
  layer, weights, _ = build(mode='predict')
  with pytest.raises(ValueError, match='predict mode'):
    lsh_buckets(layer, random_array((B, L, D)), weights)


@pytest.mark.slow  # The math is covered by test_lsh_chunked's 'length_not_multiple' case.
def test_length_not_multiple_of_chunk_len_is_padded_automatically():
  layer = LSHSelfAttention(D, n_heads=H, n_hashes=2, n_buckets=4, chunk_len=4, causal=True)
  weights, state = layer.init(ShapeDtype((B, 10, D)), rng=jax.random.key(0))
  y, new_state = jax.jit(layer.pure_fn)(random_array((B, 10, D)), weights, state,
                                        jax.random.key(1))
  assert y.shape == (B, 10, D) and new_state == ()
  assert np.all(np.isfinite(y))


def test_lsh_buckets_are_what_the_forward_sorts_by():
  """`lsh_buckets` gives the buckets the forward sorted by: replaying them (as a reversible
  backward pass may) reproduces every head's output even with other rotations."""
  layer, weights, state = TRAIN, TRAIN_W, TRAIN_S
  x = random_array((B, L, D), seed=3)
  y, _ = TRAIN_F(x, weights, state, jax.random.key(7))
  buckets = lsh_buckets(layer, x, weights, jax.random.key(7))
  q, v = heads(x, weights.q), heads(x, weights.v)
  cfg = layer.kind.config
  replay = jax.jit(lc.lsh_attention, static_argnums=4)
  fresh = layer.kind.rotations(None, 'eval', D // H)
  for b in range(B):
    for h in range(H):
      qh, vh = jnp.asarray(q[b, h], jnp.float32), jnp.asarray(v[b, h], jnp.float32)
      _, again = replay(qh, vh, jnp.ones(L, bool), fresh, cfg, buckets[b, h])
      np.testing.assert_array_equal(again, buckets[b, h])
  # And the layer output is that of the replayed per-head attention.
  outs = np.stack([np.stack([replay(jnp.asarray(q[b, h], jnp.float32),
                                    jnp.asarray(v[b, h], jnp.float32), jnp.ones(L, bool),
                                    fresh, cfg, buckets[b, h])[0] for h in range(H)])
                   for b in range(B)])
  merged = outs.transpose(0, 2, 1, 3).reshape(B, L, D)
  want = merged @ np.asarray(weights.o.kernel) + np.asarray(weights.o.bias)
  np.testing.assert_allclose(y, want, atol=2e-5, rtol=1e-5)


def test_rng_replay_gives_identical_outputs_in_forward_and_backward():
  """A reversible backward re-runs the layer with the same rng and input state: it gets
  the same buckets and outputs, so its vjp is the gradient of the original forward."""
  layer, weights, state = TRAIN, TRAIN_W, TRAIN_S
  x = jnp.asarray(random_array((B, L, D), seed=4))
  ct = jnp.asarray(random_array((B, L, D), seed=5))
  rng = jax.random.key(8)
  y, _ = TRAIN_F(x, weights, state, rng)

  @jax.jit
  def replay_vjp(x, w):
    y_again, pullback = jax.vjp(lambda a, b: layer.pure_fn(a, b, state, rng)[0], x, w)
    return y_again, pullback(ct)

  y_again, (gx, gw) = replay_vjp(x, weights)
  np.testing.assert_array_equal(y_again, y)
  assert gw.k is None and np.all(np.isfinite(gx)) and float(jnp.abs(gx).max()) > 0


def test_gradients_match_finite_differences_float64():
  with jax.enable_x64(True):
    kind = LSHKind(n_hashes=2, n_buckets=4, chunk_len=4, n_chunks_before=1, causal=True)
    state = kind.init_state(1, 1, 12, 6, jnp.float64, 'eval')

    @jax.jit
    def per_head(q, v):  # eval mode: fixed rotations, so deterministic
      return kind.attend(q, None, v, None, state, None, 'eval')[0]
    q = jnp.asarray(random_array((12, 6), seed=6), jnp.float64)
    v = jnp.asarray(random_array((12, 6), seed=7), jnp.float64)
    assert per_head(q, v).dtype == jnp.float64
    jax.test_util.check_grads(per_head, (q, v), order=1, modes=('rev',), atol=1e-6, rtol=1e-6)


@pytest.mark.slow
def test_layer_gradients_match_finite_differences_float64():
  with jax.enable_x64(True):
    layer = LSHSelfAttention(8, n_heads=2, n_hashes=2, n_buckets=4, chunk_len=4, causal=True,
                             mode='eval')
    weights, state = layer.init(ShapeDtype((1, 8, 8)), rng=jax.random.key(0))
    weights = jax.tree_util.tree_map(lambda w: jnp.asarray(w, jnp.float64),
                                     randomize_biases(weights))
    x = jnp.asarray(random_array((1, 8, 8), seed=8), jnp.float64)
    f = jax.jit(lambda x, w: layer.pure_fn(x, w, state, None)[0])
    jax.test_util.check_grads(f, (x, weights), order=1, modes=('rev',), atol=1e-6, rtol=1e-6)
