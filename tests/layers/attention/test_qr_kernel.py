"""The QR kernel's orthogonal factor (interpreter on CPU) equals jnp.linalg.qr's, sign-fixed.

On random and degenerate matrices: the values against XLA, and the defining properties
(Q orthogonal, Q^T A upper triangular with a non-negative diagonal) on their own; the
feature draw through either path; errors.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention.favor_features import orthogonal_random_features
from plait.layers.attention.qr_kernel import orthogonal_factor


def xla_factor(a):
  q, r = jnp.linalg.qr(a)
  return q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def assert_is_the_factor(q, a, tol):
  """q orthogonal and q^T a upper triangular with a non-negative diagonal."""
  q, a = np.asarray(q, np.float64), np.asarray(a, np.float64)
  d = a.shape[-1]
  np.testing.assert_allclose(np.swapaxes(q, -1, -2) @ q, np.broadcast_to(np.eye(d), q.shape),
                             atol=tol)
  r = np.swapaxes(q, -1, -2) @ a
  assert np.max(np.abs(np.tril(r, -1))) < tol * np.max(np.abs(a))
  assert np.min(np.diagonal(r, axis1=-2, axis2=-1)) > -tol


@pytest.mark.parametrize('n,d', [(3, 8), (2, 20), (2, 64)])
def test_equals_xla_qr_on_gaussian_matrices(n, d):
  a = jax.random.normal(jax.random.key(d), (n, d, d), jnp.float32)
  q = orthogonal_factor(a, interpret=True)
  assert q.shape == (n, d, d) and q.dtype == jnp.float32
  assert_is_the_factor(q, a, 1e-5)
  np.testing.assert_allclose(q, xla_factor(a), atol=1e-4)


def test_rank_deficient_and_negative_diagonal_matrices():
  """A zero column and a repeated column give no NaN; an upper-triangular matrix with a
  negative diagonal gives the signs alone."""
  a = np.array(jax.random.normal(jax.random.key(1), (3, 16, 16), jnp.float32))
  a[0, :, 3] = 0.0
  a[1, :, 5] = a[1, :, 2]
  a[2] = np.triu(a[2]) - 3 * np.eye(16)
  q = np.asarray(orthogonal_factor(jnp.asarray(a), interpret=True))
  assert np.all(np.isfinite(q))
  np.testing.assert_allclose(q[0].T @ q[0], np.eye(16), atol=1e-5)
  np.testing.assert_allclose(q[2], np.diag(np.sign(np.diag(a[2]))), atol=1e-5)
  assert_is_the_factor(q[:1], a[:1], 1e-5)


def test_feature_draws_agree_across_paths():
  key = jax.random.key(3)
  kernel = orthogonal_random_features(key, 40, 16, implementation='interpret')
  xla = orthogonal_random_features(key, 40, 16, implementation='xla')
  assert kernel.shape == (40, 16)
  np.testing.assert_allclose(kernel, xla, atol=1e-4)
  if jax.default_backend() != 'gpu':
    assert jnp.array_equal(orthogonal_random_features(key, 40, 16), xla)   # auto: XLA here


def test_errors():
  with pytest.raises(ValueError, match=r'orthogonal_factor: needs .* got \(2, 8, 6\)'):
    orthogonal_factor(jnp.ones((2, 8, 6)), interpret=True)
  with pytest.raises(ValueError, match=r'got \(1, 4, 4\) bfloat16'):
    orthogonal_factor(jnp.ones((1, 4, 4), jnp.bfloat16), interpret=True)
  if jax.default_backend() != 'gpu':
    with pytest.raises(ValueError, match="orthogonal_random_features: implementation='pallas' "
                                         'needs a GPU'):
      orthogonal_random_features(jax.random.key(0), 8, 8, implementation='pallas')
