"""Causal FAVOR+: chunked prefix sums vs the naive L x L product, gradients, memory."""
import functools

import jax
import jax.numpy as jnp
import jax.extend
import jax.test_util
import numpy as np
import pytest

from plait.layers.attention import FavorKind
from plait.layers.attention.favor_causal import causal_product
from plait.layers.attention.favor_features import (
    favor_features, fixed_orthogonal_features, orthogonal_random_features)
from tests.conftest import random_array

L, DH, M = 11, 4, 16


def qkv(seed=0, length=L, d=DH, scale=0.7):
  q, k, v = (random_array((length, d), seed + i) for i in range(3))
  return q * scale, k * scale, v


def naive_favor(q, k, v, mask, kind, projection, causal=True):
  """The same kernel the slow way: feature maps, then an L x L masked normalized product."""
  eps = kind.numerical_stabilizer
  qf = favor_features(q, projection, kind.kernel, is_query=True, stabilizer=eps)
  kf = favor_features(k, projection, kind.kernel, stabilizer=eps, mask=mask)
  weights = qf @ kf.T
  if causal:
    weights = jnp.tril(weights)
  den = weights.sum(-1, keepdims=True)
  return (weights @ v) / jnp.where(den > 0, den, 1.0)


def attend(kind, q, k, v, mask=None, projection=None):
  """kind.attend in eval mode (with kind's fixed features, or `projection`), jitted."""
  if projection is None:
    projection = kind.projection(None, q.shape[-1], 'eval')
  return _attend_jit(kind, q, k, v, mask, projection)


@functools.partial(jax.jit, static_argnums=0)
def _attend_jit(kind, q, k, v, mask, projection):
  return kind.attend_with_projection(q, k, v, mask, (), projection, 'eval')[0]


def kind_and_projection(kernel='softmax', chunk_size=3, m=M, d=DH, eps=1e-6):
  kind = FavorKind(m, kernel, causal=True, redraw=False, chunk_size=chunk_size,
                        numerical_stabilizer=eps)
  return kind, kind.projection(None, d, 'eval')


def test_causal_product_equals_cumulative_sum_definition():
  a, b, c = random_array((L, 3), 1), random_array((L, 3), 2), random_array((L, 5), 3)
  expected = np.zeros((L, 5), np.float32)
  for t in range(L):
    expected[t] = sum((a[t] @ b[j]) * c[j] for j in range(t + 1))
  out = jax.jit(causal_product, static_argnums=3)(a, b, c, 4)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_ones_queries_and_keys_with_one_hot_values_give_running_means():
  length = 8
  ones = np.ones((length, length), np.float32)
  kind = FavorKind(32, causal=True, redraw=False, chunk_size=3)
  out = attend(kind, ones, ones, np.eye(length, dtype=np.float32))
  expected = np.tril(np.ones((length, length))) / np.arange(1, length + 1)[:, None]
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('kernel', ['softmax', 'relu'])
@pytest.mark.parametrize('masked', [False, True])
def test_prefix_sums_equal_naive_masked_reference(kernel, masked):
  q, k, v = qkv(1)
  mask = (np.random.default_rng(4).random(L) < 0.7) if masked else None
  kind, projection = kind_and_projection(kernel)
  out = attend(kind, q, k, v, mask)
  np.testing.assert_allclose(out, naive_favor(q, k, v, mask, kind, projection),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kernel', ['softmax', 'relu'])
def test_custom_vjp_gradients_equal_autodiff_of_naive_reference(kernel):
  q, k, v = qkv(2)
  mask = np.random.default_rng(5).random(L) < 0.8
  cotangent = random_array((L, DH), 9)
  kind, projection = kind_and_projection(kernel)
  loss = lambda f: lambda q, k, v: jnp.sum(f(q, k, v) * cotangent)
  fast = loss(lambda q, k, v: kind.attend(q, k, v, mask, (), None, 'eval')[0])
  slow = loss(lambda q, k, v: naive_favor(q, k, v, mask, kind, projection))
  grads = lambda f: jax.jit(jax.grad(f, (0, 1, 2)))(q, k, v)
  for got, want in zip(grads(fast), grads(slow)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_causal_product_gradients_by_finite_differences():
  with jax.enable_x64():
    a, b, c = (random_array((5, s), i, np.float64) for i, s in ((1, 3), (2, 3), (3, 2)))
    jax.test_util.check_grads(jax.jit(lambda a, b, c: causal_product(a, b, c, 2)), (a, b, c),
                              order=2,
                              modes=['rev'], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize('kernel', ['softmax', 'relu'])
def test_causal_favor_gradients_by_finite_differences(kernel):
  with jax.enable_x64():
    q, k, v = (t.astype(np.float64) for t in qkv(3, length=5, d=3))
    # eps=0: the per-query max then cancels exactly, so the stop_gradient on it is exact.
    kind = FavorKind(8, kernel, causal=True, redraw=False, chunk_size=2,
                          numerical_stabilizer=0.0 if kernel == 'softmax' else 1e-3)
    f = jax.jit(lambda q, k, v: kind.attend(q, k, v, None, (), None, 'eval')[0])
    jax.test_util.check_grads(f, (q, k, v), order=1, modes=['rev'], atol=1e-5, rtol=1e-5)


def _causal_grad(length, m, d):
  kind = FavorKind(m, causal=True, redraw=False, chunk_size=32)
  def loss(q, k, v):
    return jnp.sum(kind.attend(q, k, v, None, (), None, 'eval')[0] ** 2)
  return jax.grad(loss, (0, 1, 2)), [jax.ShapeDtypeStruct((length, d), jnp.float32)] * 3


def _max_intermediate_size(jaxpr):
  """Largest array (in elements) any equation of a (closed) jaxpr or its sub-jaxprs makes."""
  biggest = 0
  for eqn in jaxpr.eqns:
    for var in eqn.outvars:
      biggest = max(biggest, int(np.prod(getattr(var.aval, 'shape', ()))))
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      biggest = max(biggest, _max_intermediate_size(sub))
  return biggest


def test_forward_and_backward_never_materialize_length_by_features_by_dhead():
  m, d = 64, 64
  temp = {}
  for length in (512, 1024):
    grad_fn, args = _causal_grad(length, m, d)
    jaxpr = jax.make_jaxpr(grad_fn)(*args).jaxpr
    assert _max_intermediate_size(jaxpr) < length * m * d // 8
    temp[length] = jax.jit(grad_fn).lower(*args).compile().memory_analysis().temp_size_in_bytes
  # Scratch grows like L * (m + d) (about 700 floats per position here); an (L, m, d)
  # tensor anywhere in forward or backward would add m * d = 4096 per position.
  assert temp[1024] - temp[512] < 512 * m * d * 4 // 2, temp


def test_projection_rows_are_orthogonal_within_a_block():
  for w in (fixed_orthogonal_features(3, 12, 8),
            jax.jit(orthogonal_random_features, static_argnums=(1, 2))(jax.random.key(3), 12, 8)):
    w = np.asarray(w)
    block = w[:8] / np.linalg.norm(w[:8], axis=1, keepdims=True)
    np.testing.assert_allclose(block @ block.T, np.eye(8), atol=1e-5)
    assert w.shape == (12, 8)
