"""Dense attention: the kind vs the exact reference, implementations, and the KV cache."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention import CausalAttention, DotProductKind, SelfAttention
from plait.layers.attention.reference import reference_attention
from plait.shapes import ShapeDtype
from tests.conftest import random_array

B, H, L, DH = 2, 3, 9, 8
ON_GPU = jax.default_backend() == 'gpu'


def qkv(seed=0, dtype=np.float32, shape=(B, H, L, DH)):
  return tuple(random_array(shape, seed + i).astype(dtype) for i in range(3))


def attend(kind, q, k, v, mask=None):
  """kind.attend_batched in eval mode, jitted (one compile instead of many eager ops)."""
  return jax.jit(lambda q, k, v, m: kind.attend_batched(q, k, v, m, (), None, 'eval')[0])(
      q, k, v, mask)


def padding_mask(seed=0, keep=0.7):
  mask = np.random.default_rng(seed).random((B, L)) < keep
  mask[:, 0] = True
  return mask


@pytest.mark.parametrize('causal', [False, True])
@pytest.mark.parametrize('masked', [False, True])
def test_dense_kind_equals_reference(causal, masked):
  q, k, v = qkv(1)
  mask = padding_mask(2) if masked else None
  out = attend(DotProductKind(causal=causal), q, k, v, mask)
  ref = reference_attention(q, k, v, mask=None if mask is None else mask[:, None], causal=causal)
  np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_per_pair_attend_equals_batched():
  q, k, v = qkv(1)
  mask = padding_mask(2)
  kind = DotProductKind(causal=True)
  batched, _ = kind.attend_batched(q, k, v, mask, (), None, 'eval')
  one, _ = kind.attend(q[1, 2], k[1, 2], v[1, 2], mask[1], (), None, 'eval')
  np.testing.assert_allclose(one, batched[1, 2], atol=1e-6)


@pytest.mark.parametrize('causal', [False, True])
def test_queries_that_see_no_valid_key_output_zero_like_the_reference(causal):
  q, k, v = qkv(1)
  mask = padding_mask(2)
  mask[0, :3] = False          # Left padding: causal queries 0..2 of row 0 see nothing.
  mask[1, :] = False           # A fully padded sequence: no query sees anything.
  out = attend(DotProductKind(causal=causal), q, k, v, mask)
  ref = reference_attention(q, k, v, mask=mask[:, None], causal=causal)
  np.testing.assert_array_equal(np.asarray(out)[1], 0.0)
  if causal:
    np.testing.assert_array_equal(np.asarray(out)[0, :, :3], 0.0)
  np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_xla_and_auto_agree():
  q, k, v = qkv(1)
  mask = padding_mask(2)
  auto = attend(DotProductKind(True), q, k, v, mask)
  xla = attend(DotProductKind(True, 'xla'), q, k, v, mask)
  np.testing.assert_allclose(auto, xla, atol=1e-6)


def test_auto_picks_xla_for_float32():
  assert DotProductKind().pick_implementation(jnp.zeros((1, 1, 8, 64)), None) == 'xla'


@pytest.mark.skipif(ON_GPU, reason='checks the error raised without a GPU')
def test_explicit_cudnn_without_gpu_raises_instead_of_falling_back():
  q, k, v = qkv(1, jnp.bfloat16)
  with pytest.raises(ValueError, match="implementation='cudnn' needs a GPU"):
    DotProductKind(implementation='cudnn').attend_batched(q, k, v, None, (), None, 'eval')


@pytest.mark.skipif(ON_GPU, reason='checks the error raised without a GPU')
@pytest.mark.parametrize('layer_fn', [SelfAttention, CausalAttention])
def test_layers_pass_implementation_through_and_cudnn_on_cpu_fails_at_init(layer_fn):
  assert layer_fn(8, n_heads=2, implementation='xla').kind.implementation == 'xla'
  layer = layer_fn(8, n_heads=2, implementation='cudnn', mode='eval')
  with pytest.raises(Exception, match="implementation='cudnn' needs a GPU.*'xla'"):
    layer.init(ShapeDtype((1, 4, 8), jnp.bfloat16))


def test_float64_stays_float64_and_matches_float64_einsum():
  with jax.enable_x64():
    q, k, v = (jnp.asarray(t, jnp.float64) for t in qkv(1))
    mask = padding_mask(2)
    out, _ = DotProductKind(causal=True).attend_batched(q, k, v, mask, (), None, 'eval')
    assert out.dtype == jnp.float64
    allowed = np.tril(np.ones((L, L), bool))[None, None] & mask[:, None, None, :]
    logits = np.where(allowed, np.einsum('bhqd,bhkd->bhqk', q, k) / np.sqrt(DH), -np.inf)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    expected = np.einsum('bhqk,bhkd->bhqd', p / p.sum(-1, keepdims=True), v)
    np.testing.assert_allclose(out, expected, atol=1e-12, rtol=1e-12)


def test_unknown_implementation_is_an_error():
  with pytest.raises(ValueError, match="implementation must be one of"):
    DotProductKind(implementation='flash')


@pytest.mark.skipif(not ON_GPU, reason='cuDNN needs a GPU')
@pytest.mark.parametrize('causal', [False, True])
@pytest.mark.parametrize('masked', [False, True])
def test_cudnn_matches_reference_in_bf16(causal, masked):
  q, k, v = qkv(1, jnp.bfloat16, shape=(B, H, 64, 64))
  mask = None
  if masked:
    mask = np.random.default_rng(2).random((B, 64)) < 0.7
    mask[:, 0] = True
  kind = DotProductKind(causal=causal, implementation='cudnn')
  out, _ = kind.attend_batched(q, k, v, mask, (), None, 'eval')
  ref = reference_attention(q, k, v, mask=None if mask is None else mask[:, None], causal=causal)
  np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=3e-2, rtol=3e-2)
  grad = jax.grad(lambda q: kind.attend_batched(q, k, v, mask, (), None, 'eval')[0]
                  .astype(jnp.float32).sum())(q)
  ref_grad = jax.grad(lambda q: reference_attention(
      q, k, v, mask=None if mask is None else mask[:, None], causal=causal).sum())(q)
  np.testing.assert_allclose(np.asarray(grad, np.float32), ref_grad, atol=5e-2, rtol=5e-2)


def test_bfloat16_inputs_give_bfloat16_outputs_close_to_reference():
  q, k, v = qkv(1, jnp.bfloat16)
  out = attend(DotProductKind(causal=True), q, k, v)
  assert out.dtype == jnp.bfloat16
  ref = reference_attention(q, k, v, causal=True)
  np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=3e-2, rtol=3e-2)


# ----- predict mode: the KV cache -----
def predict_pair(layer_fn, d_model=12, n_heads=3, max_len=16, use_mask=False):
  eval_layer = layer_fn(d_model, n_heads=n_heads, use_mask=use_mask, mode='eval')
  pred_layer = layer_fn(d_model, n_heads=n_heads, use_mask=use_mask, max_len=max_len,
                        mode='predict')
  sig = ShapeDtype((B, 1, d_model))
  weights, _ = eval_layer.init((sig, ShapeDtype((B, 1), bool)) if use_mask else sig)
  _, cache = pred_layer.init((sig, ShapeDtype((B, 1), bool)) if use_mask else sig)
  return eval_layer, pred_layer, weights, cache


def decode(layer, weights, cache, x, prompt_len, mask=None, step=None):
  """Prompt in one call, then one token per call; returns the concatenated outputs."""
  step = step or (lambda inp, c: layer.pure_fn(inp, weights, c))
  pieces, bounds = [], [0, prompt_len] + list(range(prompt_len + 1, x.shape[1] + 1))
  for a, b in zip(bounds[:-1], bounds[1:]):
    inp = x[:, a:b] if mask is None else (x[:, a:b], mask[:, a:b])
    y, cache = step(inp, cache)
    pieces.append(y if mask is None else y[0])
  return np.concatenate(pieces, axis=1), cache


def test_predict_prompt_then_tokens_equals_causal_eval_on_the_full_sequence():
  eval_layer, pred_layer, weights, cache = predict_pair(CausalAttention)
  x = random_array((B, 7, 12), 1)
  full, _ = jax.jit(eval_layer.pure_fn)(x, weights, ())
  decoded, cache = decode(pred_layer, weights, cache, x, prompt_len=4)  # Eager steps.
  np.testing.assert_allclose(decoded, full, atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(cache[3], 7)  # Position index per (batch, head).


def test_predict_under_jit_with_left_padded_prompt_equals_masked_causal_eval():
  eval_layer, pred_layer, weights, cache = predict_pair(CausalAttention, use_mask=True)
  x = random_array((B, 8, 12), 1)
  mask = np.ones((B, 8), bool)
  mask[0, :2] = False  # Row 0's prompt is left-padded by 2.
  (full, _), _ = jax.jit(eval_layer.pure_fn)((x, mask), weights, ())
  step = jax.jit(lambda inp, c: pred_layer.pure_fn(inp, weights, c))
  decoded, _ = decode(pred_layer, weights, cache, x, prompt_len=4, mask=mask, step=step)
  np.testing.assert_allclose(decoded, full, atol=1e-5, rtol=1e-5)


def test_self_attention_predict_on_a_whole_sequence_equals_eval():
  eval_layer, pred_layer, weights, cache = predict_pair(SelfAttention)
  x = random_array((B, 6, 12), 1)
  np.testing.assert_allclose(jax.jit(pred_layer.pure_fn)(x, weights, cache)[0],
                             jax.jit(eval_layer.pure_fn)(x, weights, ())[0], atol=1e-5,
                             rtol=1e-5)


def test_decoding_past_max_len_raises_eagerly_and_gives_nan_under_jit():
  _, pred_layer, weights, cache = predict_pair(CausalAttention, max_len=4)
  x = random_array((B, 3, 12), 1)
  _, cache = pred_layer.pure_fn(x, weights, cache)
  with pytest.raises(Exception, match=r'KV cache is full: 3 positions cached \+ 2 new > max_len=4'):
    pred_layer.pure_fn(x[:, :2], weights, cache)
  y, _ = jax.jit(lambda inp, c: pred_layer.pure_fn(inp, weights, c))(x[:, :2], cache)
  assert np.isnan(np.asarray(y)).all()
