"""Rotary positions (`Attention(rotary=True)`) against float64 and complex-number references."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait import layers as tl
from plait.layers.attention import rotary
from plait.shapes import ShapeDtype
from tests.conftest import random_array
from tests.layers.attention.conftest import complex_rotate, numpy_multihead, randomize_biases

ON_GPU = jax.default_backend() == 'gpu'


def test_rotate_equals_the_complex_number_reference():
  x = random_array((2, 3, 50, 8), seed=1)
  positions = np.arange(50) + 7
  got = rotary.rotate(jnp.asarray(x), jnp.asarray(positions))
  np.testing.assert_allclose(got, complex_rotate(x, positions), atol=2e-5)


def test_rotated_scores_depend_on_the_distance_only():
  q, k = random_array((6, 16), seed=2), random_array((6, 16), seed=3)
  scores = lambda start: (rotary.rotate(q, jnp.arange(6) + start)
                          @ rotary.rotate(k, jnp.arange(6) + start).T)
  np.testing.assert_allclose(scores(0), scores(1000), atol=2e-4)
  assert not np.allclose(scores(0), q @ k.T, atol=1e-2)   # positions do change the scores


def test_rotate_keeps_dtype_and_refuses_odd_widths():
  assert rotary.rotate(jnp.ones((4, 8), jnp.bfloat16), jnp.arange(4)).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match='even d_head.*\\(4, 7\\)'):
    rotary.rotate(jnp.ones((4, 7)), jnp.arange(4))


@pytest.mark.parametrize('causal', [False, True])
def test_dense_rotary_layer_equals_the_float64_reference_with_padding(causal):
  b, length, d, h = 2, 10, 16, 2
  ctor = tl.CausalAttention if causal else tl.SelfAttention
  layer = ctor(d, n_heads=h, use_mask=True, rotary=True, mode='eval')
  x = random_array((b, length, d), seed=4)
  mask = np.ones((b, length), bool)
  mask[1, 7:] = False
  weights, state = layer.init((ShapeDtype(x.shape), ShapeDtype(mask.shape, bool)))
  weights = randomize_biases(weights)
  (y, _), _ = layer.pure_fn((x, mask), weights, state)
  allowed = np.tril(np.ones((length, length), bool)) if causal else None
  want = numpy_multihead(x, weights, h, mask, allowed, rotary=True)
  np.testing.assert_allclose(y[mask], want[mask], atol=2e-5)


def jnp_rotary_attention(x, weights, n_heads, causal):
  """The same reference in jnp (complex arithmetic), differentiable, for the gradients."""
  b, length, _ = x.shape
  def heads(w):
    t = (x @ w.kernel + w.bias).reshape(b, length, n_heads, -1).transpose(0, 2, 1, 3)
    return t
  def rot(t):
    half = t.shape[-1] // 2
    theta = 10000.0 ** (-jnp.arange(half) * 2.0 / t.shape[-1])
    z = (t[..., :half] + 1j * t[..., half:]) * jnp.exp(1j * jnp.outer(jnp.arange(length), theta))
    return jnp.concatenate([z.real, z.imag], axis=-1)
  q, k, v = rot(heads(weights.q)), rot(heads(weights.k)), heads(weights.v)
  logits = jnp.einsum('bhqd,bhkd->bhqk', q, k) / np.sqrt(q.shape[-1])
  if causal:
    logits = jnp.where(jnp.tril(jnp.ones((length, length), bool)), logits, -1e30)
  out = jnp.einsum('bhqk,bhkd->bhqd', jax.nn.softmax(logits, -1), v)
  return out.transpose(0, 2, 1, 3).reshape(b, length, -1) @ weights.o.kernel + weights.o.bias


@pytest.mark.parametrize('causal', [False, True])
@pytest.mark.parametrize('head_chunk_size', [None, 1])
def test_rotary_gradients_equal_the_reference(causal, head_chunk_size):
  b, length, d, h = 2, 9, 8, 2
  ctor = tl.CausalAttention if causal else tl.SelfAttention
  layer = ctor(d, n_heads=h, head_chunk_size=head_chunk_size, rotary=True, mode='eval')
  x = jnp.asarray(random_array((b, length, d), seed=5))
  weights, state = layer.init(ShapeDtype(x.shape))
  weights = randomize_biases(weights)
  cot = jnp.asarray(random_array((b, length, d), seed=6))
  loss = lambda x, w: jnp.sum(layer.pure_fn(x, w, state)[0] * cot)
  ref_loss = lambda x, w: jnp.sum(jnp_rotary_attention(x, w, h, causal) * cot)
  got, want = jax.grad(loss, (0, 1))(x, weights), jax.grad(ref_loss, (0, 1))(x, weights)
  for g, r in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(g, r, atol=2e-4, rtol=2e-4)


# Every plait attention constructor, small enough for CPU; kinds see rotated q and k.
CONSTRUCTORS = {
    'SelfAttention': tl.SelfAttention,
    'CausalAttention': tl.CausalAttention,
    'ChunkedCausalAttention': functools.partial(tl.ChunkedCausalAttention, chunk_len=4),
    'ChunkedSelfAttention': functools.partial(tl.ChunkedSelfAttention, chunk_len=4),
    'FavorAttention': functools.partial(tl.FavorAttention, nb_features=8),
    'CausalFavorAttention': functools.partial(tl.CausalFavorAttention, nb_features=8,
                                              chunk_size=4),
    'BlockSparseAttention': functools.partial(tl.BlockSparseAttention, block_size=2,
                                              num_rand_blocks=1),
    'CausalBlockSparseAttention': functools.partial(tl.CausalBlockSparseAttention,
                                                    block_size=2, num_rand_blocks=1),
    'LSHSelfAttention': functools.partial(tl.LSHSelfAttention, n_buckets=4, chunk_len=4),
    'LSHSelfAttention_causal': functools.partial(tl.LSHSelfAttention, n_buckets=4,
                                                 chunk_len=4, causal=True),
}


@pytest.mark.parametrize('name', sorted(CONSTRUCTORS))
def test_every_constructor_hands_its_kind_rotated_queries_and_keys(name):
  b, length, d, h = 2, 16, 16, 2
  layer = CONSTRUCTORS[name](d, n_heads=h, rotary=True, mode='eval')
  assert layer.rotary and not layer.compactable
  seen = {}
  attend = layer.kind.attend_batched
  def spy(q, k, *args):
    seen['q'], seen['k'] = q, k
    return attend(q, k, *args)
  layer.kind.attend_batched = spy
  x = random_array((b, length, d), seed=7)
  weights, state = layer.init(ShapeDtype(x.shape))
  weights = randomize_biases(weights)
  y, _ = layer.pure_fn(x, weights, state, rng=jax.random.key(0))
  assert np.all(np.isfinite(y))
  def want(w):
    t = np.asarray(x, np.float64) @ np.asarray(w.kernel, np.float64) + np.asarray(w.bias)
    return complex_rotate(t.reshape(b, length, h, -1).transpose(0, 2, 1, 3), np.arange(length))
  np.testing.assert_allclose(seen['q'], want(weights.q), atol=5e-5)
  if layer.kind.shared_qk:
    assert seen['k'] is None     # LSH: the rotated queries are the keys
  else:
    np.testing.assert_allclose(seen['k'], want(weights.k), atol=5e-5)


DECODERS = {name: CONSTRUCTORS[name] for name in (
    'CausalAttention', 'ChunkedCausalAttention', 'CausalFavorAttention',
    'CausalBlockSparseAttention', 'LSHSelfAttention_causal')}
# Head groups (`chunked_map`) take the positions into their loop.
DECODERS['CausalAttention_head_chunks'] = functools.partial(tl.CausalAttention, head_chunk_size=1)


@pytest.mark.parametrize('name', sorted(DECODERS))
def test_predict_prompt_then_tokens_equals_eval(name):
  b, length, d, h, prompt = 2, 16, 16, 2, 5
  ctor = DECODERS[name]
  full = ctor(d, n_heads=h, rotary=True, max_len=length, mode='eval')
  x = jnp.asarray(random_array((b, length, d), seed=8))
  weights, state = full.init(ShapeDtype(x.shape))
  want, _ = full.pure_fn(x, weights, state)
  step = ctor(d, n_heads=h, rotary=True, max_len=length, mode='predict')
  _, cache = step.init(ShapeDtype((b, 1, d)))
  assert isinstance(cache, tl.RotaryState)
  run = jax.jit(step.pure_fn)
  outs = []
  y, cache = run(x[:, :prompt], weights, cache)
  outs.append(y)
  for i in range(prompt, length):
    y, cache = run(x[:, i:i + 1], weights, cache)
    outs.append(y)
  np.testing.assert_array_equal(cache.next_position, np.full((b, h), length))
  got = jnp.concatenate(outs, axis=1)
  if name.startswith('LSH'):   # LSH decoding's contract: position t as eval on x[:t + 1]
    prefix = jax.jit(full.pure_fn)   # one compile a prefix: far faster than eager op by op
    want = jnp.stack([prefix(x[:, :t + 1], weights, state)[0][:, t]
                      for t in range(prompt, length)], axis=1)
    np.testing.assert_allclose(got[:, prompt:], want, atol=2e-5)
  else:
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_predict_with_a_state_without_positions_is_one_clear_error():
  layer = tl.CausalAttention(8, n_heads=2, rotary=True, max_len=8, mode='predict')
  weights, cache = layer.init(ShapeDtype((1, 1, 8)))
  with pytest.raises(tl.LayerError, match='(?s)CausalAttention.*test_rotary.py.*RotaryState.*'
                                          'got tuple'):
    layer.pure_fn(jnp.ones((1, 1, 8)), weights, cache.kind)


def test_bad_rotary_arguments_name_the_layer_and_the_shapes():
  with pytest.raises(ValueError, match='SelfAttention.*d_head must be even.*d_head=3 '
                                       '\\(d_model=6, n_heads=2\\)'):
    tl.SelfAttention(6, n_heads=2, rotary=True)
  with pytest.raises(TypeError, match='LSHSelfAttention: rotary must be True or False'):
    tl.LSHSelfAttention(8, n_heads=2, rotary='yes')


def test_rotary_off_leaves_layers_as_they_were():
  layer = tl.SelfAttention(16, n_heads=2, mode='eval')
  assert not layer.rotary and layer.compactable
  x = random_array((2, 6, 16), seed=9)
  weights, state = layer.init(ShapeDtype(x.shape))
  weights = randomize_biases(weights)
  np.testing.assert_allclose(layer.pure_fn(x, weights, state)[0],
                             numpy_multihead(x, weights, 2), atol=2e-5)


@pytest.mark.skipif(not ON_GPU, reason='the cuDNN and kernel paths run on a GPU')
@pytest.mark.parametrize('name', ['SelfAttention', 'CausalAttention', 'BlockSparseAttention',
                                  'LSHSelfAttention_causal', 'FavorAttention'])
def test_gpu_bf16_rotary_layers_on_cudnn_and_kernels_match_their_xla_form(name):
  b, length, d, h = 2, 512, 256, 4
  kwargs = dict(n_heads=h, rotary=True, mode='eval')
  ctor = {'SelfAttention': tl.SelfAttention, 'CausalAttention': tl.CausalAttention,
          'BlockSparseAttention': functools.partial(tl.BlockSparseAttention, block_size=64,
                                                    num_rand_blocks=1),
          'LSHSelfAttention_causal': functools.partial(tl.LSHSelfAttention, n_buckets=8,
                                                       chunk_len=64, causal=True),
          'FavorAttention': functools.partial(tl.FavorAttention, nb_features=64)}[name]
  fast, exact = ctor(d, **kwargs), ctor(d, implementation='xla', **kwargs)
  x = jnp.asarray(random_array((b, length, d), seed=10)).astype(jnp.bfloat16)
  weights, state = exact.init(ShapeDtype(x.shape))
  want, _ = exact.pure_fn(x, weights, state)
  got, _ = fast.pure_fn(x, weights, state)
  want, got = want.astype(jnp.float32), got.astype(jnp.float32)
  err = jnp.linalg.norm(got - want) / jnp.linalg.norm(want)
  assert err < 2e-2, err


def test_lsh_buckets_of_a_rotary_layer_are_those_its_forward_sorts_by():
  """`lsh_buckets` (inspection) hashes the rotated queries, as the forward does."""
  layer = tl.LSHSelfAttention(16, n_heads=2, n_hashes=2, n_buckets=4, chunk_len=4, rotary=True,
                              mode='eval')
  x = random_array((2, 16, 16), seed=11)
  weights, state = layer.init(ShapeDtype(x.shape))
  seen = {}
  attend = layer.kind.attend_batched
  def spy(q, *args):
    seen['q'] = q
    return attend(q, *args)
  layer.kind.attend_batched = spy
  layer.pure_fn(x, weights, state)
  forward = layer.kind.buckets(seen['q'], None, None, 'eval')
  got = tl.attention.lsh_buckets(layer, x, weights)
  np.testing.assert_array_equal(got, forward)
  plain = tl.LSHSelfAttention(16, n_heads=2, n_hashes=2, n_buckets=4, chunk_len=4, mode='eval')
  assert not np.array_equal(got, tl.attention.lsh_buckets(plain, x, weights))
