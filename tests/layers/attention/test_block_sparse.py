"""Block-sparse attention equals dense attention under its boolean pattern mask."""
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from plait.layers.attention import (
    BlockSparseAttention, BlockSparseKind, CausalAttention, CausalBlockSparseAttention,
    SelfAttention)
from plait.layers.attention.block_sparse_pattern import block_sparse_mask
from plait.layers.attention.reference import dense_mask_attention
from plait.shapes import ShapeDtype
from tests.conftest import random_array
from tests.layers.attention.conftest import numpy_multihead, randomize_biases

B, H, DH = 2, 2, 4


def qkv(length, seed=0, dtype=np.float32):
  return tuple(random_array((B, H, length, DH), seed + i, dtype) for i in range(3))


def padding_mask(length, seed=0, keep=0.7):
  return np.random.default_rng(seed).random((B, length)) < keep


def attend(kind, q, k, v, mask=None):
  """kind.attend_batched in eval mode, jitted (one compile instead of many eager ops)."""
  return jax.jit(lambda q, k, v, m: kind.attend_batched(q, k, v, m, (), None, 'eval')[0])(
      q, k, v, mask)


def numpy_attention(q, k, v, allowed):
  """Dense softmax attention under a boolean mask in float64 numpy (0 for rows seeing nothing)."""
  q, k, v = (np.asarray(t, np.float64) for t in (q, k, v))
  logits = np.einsum('...qd,...kd->...qk', q, k) / np.sqrt(q.shape[-1])
  allowed = np.broadcast_to(allowed, logits.shape)
  logits = np.where(allowed, logits, -np.inf)
  top = np.max(logits, axis=-1, keepdims=True)
  p = np.exp(logits - np.where(np.isfinite(top), top, 0.0))
  p = p / np.maximum(p.sum(-1, keepdims=True), 1e-300)
  return np.einsum('...qk,...kd->...qd', p, v)


# (length, block_size, num_rand_blocks, seed, masked): block multiples and not (automatic
# padding), with and without a padding mask.
CASES = [(48, 4, 2, 0, False), (45, 4, 2, 1, True), (64, 8, 1, 5, True), (50, 6, 3, 2, False),
         (33, 3, 0, 9, True)]


@pytest.mark.parametrize('causal', [False, True])
@pytest.mark.parametrize('length,bs,r,seed,masked', CASES)
def test_block_sparse_equals_dense_under_the_pattern_mask(causal, length, bs, r, seed, masked):
  q, k, v = qkv(length, seed)
  mask = padding_mask(length, seed + 10) if masked else None
  out = attend(BlockSparseKind(bs, r, seed=seed, causal=causal), q, k, v, mask)
  allowed = block_sparse_mask(length, bs, r, seed, causal)[None, None]
  if masked:
    allowed = allowed & mask[:, None, None, :]
  np.testing.assert_allclose(out, numpy_attention(q, k, v, allowed), atol=1e-5, rtol=1e-5)


def test_block_sparse_equals_the_library_reference_oracle():
  length, bs, r, seed = 45, 4, 2, 1
  q, k, v = qkv(length, 7)
  mask = padding_mask(length, 8)
  out = attend(BlockSparseKind(bs, r, seed=seed), q, k, v, mask)
  allowed = block_sparse_mask(length, bs, r, seed)[None, None] & mask[:, None, None, :]
  np.testing.assert_allclose(out, dense_mask_attention(q, k, v, allowed), atol=1e-5, rtol=1e-5)


def test_per_pair_attend_equals_batched():
  length = 45
  q, k, v = qkv(length, 3)
  mask = padding_mask(length, 4)
  kind = BlockSparseKind(4, 2, seed=3)
  batched = attend(kind, q, k, v, mask)
  one = jax.jit(lambda q, k, v, m: kind.attend(q, k, v, m, (), None, 'eval')[0])(
      q[1, 0], k[1, 0], v[1, 0], mask[1])
  np.testing.assert_allclose(one, batched[1, 0], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize('causal', [False, True])
def test_layer_equals_numpy_multihead_under_the_pattern(causal):
  length, d_model, bs, r = 37, 8, 4, 2
  make = CausalBlockSparseAttention if causal else BlockSparseAttention
  layer = make(d_model, n_heads=2, block_size=bs, num_rand_blocks=r, seed=4, use_mask=True,
               head_chunk_size=1, mode='eval')
  x = random_array((B, length, d_model), 1)
  mask = padding_mask(length, 2)
  weights, state = layer.init((ShapeDtype(x.shape), ShapeDtype(mask.shape, np.bool_)))
  weights = randomize_biases(weights)
  (y, _), _ = jax.jit(layer.pure_fn)((x, mask), weights, state)
  expected = numpy_multihead(x, weights, 2, mask=mask,
                             allowed=block_sparse_mask(length, bs, r, 4, causal))
  np.testing.assert_allclose(y, expected, atol=1e-5, rtol=1e-5)


def test_causal_layer_outputs_ignore_future_tokens():
  length, d_model, cut = 41, 8, 23
  layer = CausalBlockSparseAttention(d_model, n_heads=2, block_size=4, num_rand_blocks=2,
                                     mode='eval')
  x = random_array((B, length, d_model), 1)
  x_changed = x.copy()
  x_changed[:, cut:] = random_array((B, length - cut, d_model), 2)
  weights, state = layer.init(ShapeDtype(x.shape))
  run = jax.jit(layer.pure_fn)
  y, _ = run(x, weights, state)
  y_changed, _ = run(x_changed, weights, state)
  np.testing.assert_allclose(y[:, :cut], y_changed[:, :cut], atol=1e-6, rtol=1e-6)
  assert np.abs(y[:, cut:] - y_changed[:, cut:]).min() > 0  # the future did change


@pytest.mark.parametrize('causal,minimum', [(False, 7), (True, 5)])
def test_too_short_sequence_is_a_clear_error(causal, minimum):
  make = CausalBlockSparseAttention if causal else BlockSparseAttention
  layer = make(8, n_heads=2, block_size=4, num_rand_blocks=2)
  length = (minimum - 1) * 4  # one block short
  with pytest.raises(Exception, match=f'length {length} is too short.*block_size=4.*'
                                      f'at least {minimum} blocks.*dense_fallback=True'):
    layer.init(ShapeDtype((B, length, 8)))
  layer.init(ShapeDtype((B, length + 1, 8)))  # a partial extra block is enough
  assert layer.kind.min_length == length + 1


@pytest.mark.parametrize('causal', [False, True])
def test_dense_fallback_on_short_sequences_equals_dense_attention(causal):
  length, d_model = 13, 8
  make = CausalBlockSparseAttention if causal else BlockSparseAttention
  layer = make(d_model, n_heads=2, block_size=4, num_rand_blocks=2, dense_fallback=True,
               use_mask=True, mode='eval')
  dense = (CausalAttention if causal else SelfAttention)(d_model, n_heads=2, use_mask=True,
                                                         mode='eval')
  x, mask = random_array((B, length, d_model), 1), padding_mask(length, 3)
  weights, state = layer.init((ShapeDtype(x.shape), ShapeDtype(mask.shape, np.bool_)))
  (y, _), _ = jax.jit(layer.pure_fn)((x, mask), weights, state)
  (y_dense, _), _ = jax.jit(dense.pure_fn)((x, mask), weights, state)
  np.testing.assert_allclose(y, y_dense, atol=1e-5, rtol=1e-5)


def test_same_seed_same_output_other_seed_other_output():
  length = 64
  q, k, v = qkv(length, 1)
  run = lambda seed: attend(BlockSparseKind(4, 2, seed=seed), q, k, v)
  np.testing.assert_array_equal(run(5), run(5))
  assert np.abs(run(5) - run(6)).max() > 1e-3


@pytest.mark.parametrize('causal', [False, True])
def test_block_sparse_gradients_match_finite_differences_in_float64(causal):
  with jax.enable_x64():
    q, k, v = (jnp.asarray(t[:1, :1], jnp.float64) for t in qkv(15, 2))
    mask = np.ones((1, 15), bool)
    mask[0, [3, 9]] = False
    kind = BlockSparseKind(2, 1, seed=1, causal=causal)
    f = jax.jit(lambda q, k, v: kind.attend_batched(q, k, v, mask, (), None, 'eval')[0])
    check_grads(f, (q, k, v), order=1, modes=['rev'], eps=1e-5, atol=1e-7, rtol=1e-7)


def _avals(jaxpr):
  """Every intermediate value's aval in a closed jaxpr, sub-jaxprs included."""
  for eqn in jaxpr.eqns:
    yield from (v.aval for v in eqn.outvars)
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      yield from _avals(sub)


@pytest.mark.parametrize('causal', [False, True])
def test_no_length_by_length_value_in_forward_or_backward(causal):
  length = 1024
  q = jax.ShapeDtypeStruct((1, 1, length, 16), jnp.float32)
  kind = BlockSparseKind(32, 3, causal=causal)
  loss = lambda q, k, v: kind.attend_batched(q, k, v, None, (), None, 'eval')[0].sum()
  jaxpr = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1, 2)))(q, q, q).jaxpr
  biggest = max(int(np.prod(a.shape)) for a in _avals(jaxpr) if hasattr(a, 'shape'))
  assert biggest < length * length // 4, biggest


def compiled_temp_bytes(length, causal):
  """Temp memory XLA allocates for forward + backward at this length (CPU)."""
  q = jax.ShapeDtypeStruct((1, 1, length, 16), jnp.float32)
  kind = BlockSparseKind(64, 3, causal=causal)
  loss = lambda q, k, v: kind.attend_batched(q, k, v, None, (), None, 'eval')[0].sum()
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(q, q, q).compile()
  return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize('causal', [False, True])
def test_block_sparse_memory_grows_linearly_not_quadratically(causal):
  small, large = compiled_temp_bytes(1024, causal), compiled_temp_bytes(4096, causal)
  assert large / small < 6, (small, large)  # 4x length: ~4x if linear, ~16x if quadratic.


def test_causal_predict_equals_eval_on_the_full_sequence():
  length, d_model = 27, 8
  kw = dict(n_heads=2, block_size=3, num_rand_blocks=2, seed=2, use_mask=True)
  eval_layer = CausalBlockSparseAttention(d_model, mode='eval', **kw)
  pred_layer = CausalBlockSparseAttention(d_model, mode='predict', max_len=32, **kw)
  x, mask = random_array((B, length, d_model), 1), padding_mask(length, 4)
  mask[:, :2] = True
  sig = lambda n: (ShapeDtype((B, n, d_model)), ShapeDtype((B, n), np.bool_))
  weights, _ = eval_layer.init(sig(length))
  _, cache = pred_layer.init(sig(1))
  (full, _), _ = jax.jit(eval_layer.pure_fn)((x, mask), weights, ())
  step = jax.jit(pred_layer.pure_fn)
  pieces = []
  for a, b in [(0, 7)] + [(i, i + 1) for i in range(7, length)]:
    (y, _), cache = step((x[:, a:b], mask[:, a:b]), weights, cache)
    pieces.append(y)
  np.testing.assert_allclose(np.concatenate(pieces, 1), full, atol=1e-5, rtol=1e-5)


def test_bidirectional_block_sparse_has_no_predict_mode():
  layer = BlockSparseAttention(8, n_heads=2, block_size=4, mode='predict')
  with pytest.raises(Exception, match='predict mode .* needs the causal variant'):
    layer.init(ShapeDtype((B, 1, 8)))


def test_bad_kind_arguments_are_errors():
  with pytest.raises(ValueError, match='block_size >= 1'):
    BlockSparseKind(0)
  with pytest.raises(ValueError, match='seed must be a non-negative int'):
    BlockSparseKind(4, seed=1.5)
