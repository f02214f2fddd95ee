"""The Pallas decoding-step kernel (run by its interpreter on CPU) equals masked attention."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait import models
from plait.layers.attention import dense, decode_kernel
from plait.supervised import decoding
from tests.gpu_lowering import abstract_gpu, kernel_names, lowered_for_cuda
from tests.models import helpers


def _reference(q, k, v, length):
  allowed = (jnp.arange(k.shape[-2]) < length)[None, None, :]
  return dense.masked_attention(q[:, None].astype(jnp.float32), k.astype(jnp.float32),
                                v.astype(jnp.float32), allowed)[:, 0]


@pytest.mark.parametrize('length', [1, 37, 64, 65, 256])
def test_kernel_equals_masked_attention_on_the_filled_prefix(length):
  k1, k2, k3 = jax.random.split(jax.random.key(length), 3)
  q = jax.random.normal(k1, (6, 32))
  k = 2 * jax.random.normal(k2, (6, 256, 32))
  v = jax.random.normal(k3, (6, 256, 32))
  got = decode_kernel.decode_attention(q, k, v, length, block_k=64, interpret=True)
  np.testing.assert_allclose(got, _reference(q, k, v, length), rtol=1e-5, atol=1e-5)
  # Garbage past the filled prefix must not leak in.
  k_bad = k.at[:, length:].set(1e4)
  v_bad = v.at[:, length:].set(jnp.nan)
  got_bad = decode_kernel.decode_attention(q, k_bad, v_bad, length, block_k=64, interpret=True)
  np.testing.assert_allclose(got_bad, got, rtol=1e-6)


def test_bf16_kernel_is_close_to_float32():
  k1, k2, k3 = jax.random.split(jax.random.key(7), 3)
  q, k, v = (jax.random.normal(key, s, jnp.bfloat16)
             for key, s in ((k1, (4, 64)), (k2, (4, 128, 64)), (k3, (4, 128, 64))))
  got = decode_kernel.decode_attention(q, k, v, 100, interpret=True)
  assert got.dtype == jnp.bfloat16
  ref = _reference(q, k, v, 100)
  assert float(jnp.linalg.norm(got.astype(jnp.float32) - ref) / jnp.linalg.norm(ref)) < 1e-2


def test_cached_attention_with_the_kernel_equals_xla_path_step_by_step():
  b, h, length, d = 2, 3, 64, 16
  cache = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (b, h) + x.shape),
                                 dense.init_kv_cache(length, d, jnp.float32))
  causal = lambda qp, kp: kp <= qp
  ref_cache = cache
  for step in range(5):
    q, k, v = (jax.random.normal(jax.random.key(10 * step + i), (b, h, 1, d)) for i in range(3))
    got, cache = dense.cached_attention(q, k, v, None, cache, causal, kernel='interpret')
    want, ref_cache = dense.cached_attention(q, k, v, None, ref_cache, causal)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  jax.tree_util.tree_map(np.testing.assert_array_equal, cache, ref_cache)


def test_kernel_refuses_masks_prompts_and_odd_lengths():
  cache = dense.init_kv_cache(64, 16, jnp.float32)
  x = jnp.ones((1, 16))
  with pytest.raises(ValueError, match='one new position and no mask'):
    dense.cached_attention(x, x, x, jnp.ones((1,), bool), cache, lambda qp, kp: kp <= qp,
                           kernel='interpret')
  with pytest.raises(ValueError, match='one new position'):
    y = jnp.ones((2, 16))
    dense.cached_attention(y, y, y, None, cache, lambda qp, kp: kp <= qp, kernel='interpret')
  with pytest.raises(ValueError, match='length 40 has no power-of-two block.*multiple of 16'):
    decode_kernel.decode_attention(jnp.ones((1, 16)), jnp.ones((1, 40, 16)),
                                   jnp.ones((1, 40, 16)), 3, interpret=True)
  with pytest.raises(ValueError, match='length 48 is not a multiple of block_k=32'):
    decode_kernel.decode_attention(jnp.ones((1, 16)), jnp.ones((1, 48, 16)),
                                   jnp.ones((1, 48, 16)), 3, block_k=32, interpret=True)
  assert decode_kernel.block_size(40) is None and decode_kernel.block_size(2048) == 128
  assert decode_kernel.block_size(48) == 16


def test_the_kernel_is_picked_only_on_gpu_without_masks():
  kind = dense.DotProductKind(causal=True)
  cache = dense.init_kv_cache(128, 64, jnp.bfloat16)
  q = jnp.ones((2, 4, 1, 64), jnp.bfloat16)
  assert kind.pick_decode_kernel(q, None, cache) == (
      'pallas' if jax.default_backend() == 'gpu' else None)
  assert kind.pick_decode_kernel(q, jnp.ones((2, 1, 1), bool), cache) is None
  assert dense.DotProductKind(True, 'xla').pick_decode_kernel(q, None, cache) is None


def test_transformer_lm_decoding_with_the_kernel_equals_rerun(monkeypatch):
  monkeypatch.setattr(dense.DotProductKind, 'pick_decode_kernel',
                      lambda self, q, mask, cache: 'interpret' if q.shape[-2] == 1 else None)
  kwargs = dict(helpers.LMS['TransformerLM'][1], attention_type='dense')
  weights = helpers.random_weights(models.TransformerLM(**kwargs, mode='train'),
                                   helpers.token_signature(2, 16))
  prompt = helpers.random_tokens((2, 5), seed=3, high=helpers.VOCAB)
  fast = decoding.autoregressive_sample(models.TransformerLM(**kwargs, mode='predict'), prompt,
                                        temperature=0.0, max_length=8, weights=weights)
  slow = decoding.rerun_sample(models.TransformerLM(**kwargs, mode='eval'), prompt,
                               temperature=0.0, max_length=8, weights=weights, pad_multiple=32)
  np.testing.assert_array_equal(fast, slow)


def test_kernel_lowers_to_triton_without_a_gpu():
  """CI has no GPU: lower for CUDA on an abstract H200 (catches Triton-lowering gaps, e.g.
  scalar stacks, that the interpreter accepts); the layer picks the kernel there."""
  q = jax.ShapeDtypeStruct((96, 64), jnp.bfloat16)
  k = jax.ShapeDtypeStruct((96, 2048, 64), jnp.bfloat16)
  n = jax.ShapeDtypeStruct((), jnp.int32)
  text = lowered_for_cuda(decode_kernel.decode_attention, q, k, k, n)
  assert kernel_names(text) == ['plait_decode_attention']
  one, cache = jnp.ones((2, 4, 1, 64), jnp.bfloat16), dense.init_kv_cache(128, 64, jnp.bfloat16)
  with abstract_gpu():
    assert dense.DotProductKind(causal=True).pick_decode_kernel(one, None, cache) == 'pallas'


def test_float32_caches_with_bf16_queries():
  """Caches keep their init dtype (float32) when decoding with bf16 weights: no cast."""
  k1, k2, k3 = jax.random.split(jax.random.key(9), 3)
  q = jax.random.normal(k1, (3, 64), jnp.bfloat16)
  k, v = jax.random.normal(k2, (3, 128, 64)), jax.random.normal(k3, (3, 128, 64))
  got = decode_kernel.decode_attention(q, k, v, 70, interpret=True)
  assert got.dtype == jnp.bfloat16
  ref = _reference(q, k, v, 70)
  assert float(jnp.linalg.norm(got.astype(jnp.float32) - ref) / jnp.linalg.norm(ref)) < 1e-2


def test_caches_take_the_dtype_of_bf16_weights_and_decoding_still_matches():
  kwargs = dict(helpers.LMS['TransformerLM'][1], attention_type='dense')
  weights = helpers.random_weights(models.TransformerLM(**kwargs, mode='train'),
                                   helpers.token_signature(2, 16))
  weights = jax.tree_util.tree_map(lambda w: w.astype(jnp.bfloat16), weights)
  predict = models.TransformerLM(**kwargs, mode='predict')
  state = decoding.fresh_state(predict, jax.ShapeDtypeStruct((2, 1), jnp.int32))
  _, state = predict.pure_fn(jnp.ones((2, 3), jnp.int32), weights, state, None)
  caches = [x for x in jax.tree_util.tree_leaves(state) if x.ndim == 4]
  assert caches and all(c.dtype == jnp.bfloat16 for c in caches)
  prompt = helpers.random_tokens((2, 4), seed=5, high=helpers.VOCAB)
  on_device = decoding.autoregressive_sample(predict, prompt, temperature=0.0, max_length=6,
                                             weights=weights)
  stream = decoding.autoregressive_sample(predict, prompt, temperature=0.0, max_length=6,
                                          weights=weights, on_device=False)
  np.testing.assert_array_equal(on_device, stream)
