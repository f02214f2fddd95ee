"""The exact attention oracle, checked against a loop-by-loop numpy softmax."""
import numpy as np

from plait.layers.attention.reference import causal_mask, dense_mask_attention, reference_attention
from tests.conftest import random_array


def numpy_attention(q, k, v, allowed):
  """Row by row: softmax over allowed keys of q.k / sqrt(d), then a weighted sum of v."""
  out = np.zeros(q.shape[:-1] + v.shape[-1:])
  for i in range(q.shape[0]):
    idx = np.nonzero(allowed[i])[0]
    if idx.size == 0:
      continue
    logits = k[idx] @ q[i] / np.sqrt(q.shape[-1])
    p = np.exp(logits - logits.max())
    out[i] = (p / p.sum()) @ v[idx]
  return out


def test_reference_matches_numpy_softmax():
  q, k, v = random_array((5, 4), 1), random_array((7, 4), 2), random_array((7, 3), 3)
  got = reference_attention(q, k, v)
  np.testing.assert_allclose(got, numpy_attention(q, k, v, np.ones((5, 7), bool)), atol=1e-5)


def test_causal_with_fewer_queries_aligns_queries_to_the_end():
  q, k, v = random_array((3, 4), 1), random_array((6, 4), 2), random_array((6, 4), 3)
  allowed = np.arange(6)[None, :] <= (3 + np.arange(3))[:, None]
  np.testing.assert_allclose(reference_attention(q, k, v, causal=True),
                             numpy_attention(q, k, v, allowed), atol=1e-5)


def test_key_mask_and_causal_combine():
  q, k, v = random_array((6, 4), 1), random_array((6, 4), 2), random_array((6, 4), 3)
  mask = np.array([1, 0, 1, 1, 0, 1], bool)
  allowed = np.tril(np.ones((6, 6), bool)) & mask[None, :]
  np.testing.assert_allclose(reference_attention(q, k, v, mask=mask, causal=True),
                             numpy_attention(q, k, v, allowed), atol=1e-5)


def test_rows_without_valid_keys_are_zero():
  q, k, v = random_array((2, 3, 4), 1), random_array((2, 3, 4), 2), random_array((2, 3, 4), 3)
  mask = np.array([[1, 1, 1], [0, 0, 0]], bool)
  out = np.asarray(reference_attention(q, k, v, mask=mask))
  np.testing.assert_array_equal(out[1], 0.0)
  assert np.abs(out[0]).min() > 0.0


def test_bias_is_added_to_logits():
  q, k, v = random_array((4, 4), 1), random_array((5, 4), 2), random_array((5, 4), 3)
  bias = random_array((4, 5), 4)
  np.testing.assert_allclose(reference_attention(q, k, v, bias=bias),
                             _with_bias_numpy(q, k, v, bias), atol=1e-5)


def _with_bias_numpy(q, k, v, bias):
  logits = q @ k.T / np.sqrt(q.shape[-1]) + bias
  p = np.exp(logits - logits.max(-1, keepdims=True))
  return (p / p.sum(-1, keepdims=True)) @ v


def test_dense_mask_attention_uses_the_explicit_mask():
  q, k, v = random_array((5, 4), 1), random_array((5, 4), 2), random_array((5, 4), 3)
  allowed = np.random.default_rng(0).random((5, 5)) < 0.5
  allowed[:, 0] = True
  np.testing.assert_allclose(dense_mask_attention(q, k, v, allowed),
                             numpy_attention(q, k, v, allowed), atol=1e-5)


def test_causal_mask_offset():
  np.testing.assert_array_equal(causal_mask(2, 4), [[1, 1, 1, 0], [1, 1, 1, 1]])
  np.testing.assert_array_equal(causal_mask(2, 4, q_offset=0), [[1, 0, 0, 0], [1, 1, 0, 0]])
