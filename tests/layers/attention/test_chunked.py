"""Chunked (local) attention equals dense attention under the equivalent banded mask."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention import (
    CausalAttention, ChunkedCausalAttention, ChunkedKind, ChunkedSelfAttention)
from plait.layers.attention.reference import dense_mask_attention
from plait.shapes import ShapeDtype
from tests.conftest import random_array

B, H, DH = 2, 2, 4


def qkv(length, seed=0):
  return tuple(random_array((B, H, length, DH), seed + i) for i in range(3))


def attend(kind, q, k, v, mask=None):
  """kind.attend_batched in eval mode, jitted (one compile instead of many eager ops)."""
  return jax.jit(lambda q, k, v, m: kind.attend_batched(q, k, v, m, (), None, 'eval')[0])(
      q, k, v, mask)


def banded_mask(length, chunk_len, before, after, causal):
  """The dense (L, L) mask chunked attention should equal, written independently."""
  i, j = np.arange(length)[:, None], np.arange(length)[None, :]
  ci, cj = i // chunk_len, j // chunk_len
  ok = (cj >= ci - before) & (cj <= ci + after)
  return ok & (j <= i) if causal else ok


@pytest.mark.parametrize('length,chunk_len,before', [(13, 4, 1), (13, 3, 2), (9, 4, 0),
                                                     (7, 8, 1), (10, 2, 9)])
def test_causal_chunked_equals_dense_with_banded_causal_mask(length, chunk_len, before):
  q, k, v = qkv(length, 1)
  kind = ChunkedKind(chunk_len, n_chunks_before=before, causal=True)
  out = attend(kind, q, k, v)
  ref = dense_mask_attention(q, k, v, banded_mask(length, chunk_len, before, 0, True))
  np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('length,chunk_len,before,after', [(13, 3, 0, 2), (8, 4, 1, 1),
                                                           (6, 2, 5, 5)])
def test_bidirectional_chunked_equals_dense_with_banded_mask(length, chunk_len, before, after):
  # (8, 4, 1, 1) and (6, 2, 5, 5): windows wider than the sequence must not count a
  # chunk twice (jnp.roll wraps around).
  q, k, v = qkv(length, 1)
  kind = ChunkedKind(chunk_len, n_chunks_before=before, n_chunks_after=after, causal=False)
  out = attend(kind, q, k, v)
  ref = dense_mask_attention(q, k, v, banded_mask(length, chunk_len, before, after, False))
  np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_padding_mask_combines_with_the_band():
  length = 11
  q, k, v = qkv(length, 1)
  mask = np.random.default_rng(3).random((B, length)) < 0.6
  kind = ChunkedKind(3, n_chunks_before=1, causal=True)
  out = attend(kind, q, k, v, mask)
  allowed = banded_mask(length, 3, 1, 0, True)[None, None] & mask[:, None, None, :]
  np.testing.assert_allclose(out, dense_mask_attention(q, k, v, allowed), atol=1e-5, rtol=1e-5)


def test_chunked_layer_with_window_covering_everything_equals_causal_attention():
  x = random_array((B, 10, 8), 1)
  dense = CausalAttention(8, n_heads=2, mode='eval')
  chunked = ChunkedCausalAttention(8, n_heads=2, chunk_len=3, n_chunks_before=4, mode='eval')
  weights, state = dense.init(ShapeDtype(x.shape))
  np.testing.assert_allclose(jax.jit(chunked.pure_fn)(x, weights, state)[0],
                             jax.jit(dense.pure_fn)(x, weights, state)[0], atol=1e-5, rtol=1e-5)


def test_chunked_predict_equals_chunked_eval_on_the_full_sequence():
  length, d_model = 11, 8
  x = random_array((B, length, d_model), 1)
  kw = dict(n_heads=2, chunk_len=3, n_chunks_before=1)
  eval_layer = ChunkedCausalAttention(d_model, mode='eval', **kw)
  pred_layer = ChunkedCausalAttention(d_model, mode='predict', max_len=16, **kw)
  weights, _ = eval_layer.init(ShapeDtype(x.shape))
  _, cache = pred_layer.init(ShapeDtype((B, 1, d_model)))
  full, _ = jax.jit(eval_layer.pure_fn)(x, weights, ())
  step = jax.jit(pred_layer.pure_fn)
  pieces = []
  for a, b in [(0, 5)] + [(i, i + 1) for i in range(5, length)]:
    y, cache = step(x[:, a:b], weights, cache)
    pieces.append(y)
  np.testing.assert_allclose(np.concatenate(pieces, 1), full, atol=1e-5, rtol=1e-5)


def compiled_temp_bytes(length, kind_fn):
  """Temp memory XLA allocates for forward + backward at this length (CPU)."""
  q = jax.ShapeDtypeStruct((1, 1, length, 32), jnp.float32)
  loss = lambda q, k, v: kind_fn().attend_batched(q, k, v, None, (), None, 'eval')[0].sum()
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(q, q, q).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def test_chunked_memory_grows_linearly_not_quadratically():
  kind_fn = lambda: ChunkedKind(64, n_chunks_before=1, causal=True)
  small, large = compiled_temp_bytes(512, kind_fn), compiled_temp_bytes(2048, kind_fn)
  assert large / small < 6, (small, large)  # 4x length: ~4x if linear, ~16x if quadratic.


def test_causal_chunked_cannot_look_ahead():
  with pytest.raises(ValueError, match='causal attention cannot look at later chunks'):
    ChunkedKind(4, n_chunks_after=1, causal=True)


def test_bidirectional_chunked_has_no_predict_mode():
  layer = ChunkedSelfAttention(8, n_heads=2, chunk_len=4, mode='predict')
  with pytest.raises(Exception, match='predict mode .* needs causal=True'):
    layer.init(ShapeDtype((B, 1, 8)))


def test_bad_chunk_len_is_an_error():
  with pytest.raises(ValueError, match='chunk_len >= 1'):
    ChunkedKind(0)
