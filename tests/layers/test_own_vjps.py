"""Layers with their own vjp (cross_entropy, exact_gelu) equal autodiff of the plain formulas."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers import metrics


def reference(logits, targets, label_smoothing):
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
  return (1.0 - label_smoothing) * nll - label_smoothing * jnp.mean(log_probs, axis=-1)


@pytest.mark.parametrize('label_smoothing', [0.0, 0.1])
def test_values_and_gradients_equal_autodiff_of_log_softmax(label_smoothing):
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  logits = 3 * jax.random.normal(k1, (3, 5, 17))
  targets = jax.random.randint(k2, (3, 5), 0, 17)
  weights = jax.random.uniform(k3, (3, 5))
  def loss(fn, x):
    return jnp.sum(fn(x, targets, label_smoothing) * weights)
  np.testing.assert_allclose(metrics.cross_entropy(logits, targets, label_smoothing),
                             reference(logits, targets, label_smoothing), rtol=1e-5, atol=1e-6)
  got = jax.grad(lambda x: loss(metrics.cross_entropy, x))(logits)
  want = jax.grad(lambda x: loss(reference, x))(logits)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  assert np.abs(want).max() > 0.1  # A real gradient, not zeros.


def test_bf16_logits_get_bf16_gradients_close_to_float32():
  logits = 2 * jax.random.normal(jax.random.key(1), (4, 33))
  targets = jax.random.randint(jax.random.key(2), (4,), 0, 33)
  grad = lambda x: jax.grad(lambda x: metrics.cross_entropy(x, targets).sum())(x)
  got = grad(logits.astype(jnp.bfloat16))
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(got.astype(jnp.float32), grad(logits), atol=1e-2)


def test_jit_and_second_call_agree():
  logits = jax.random.normal(jax.random.key(3), (2, 9))
  targets = jnp.array([0, 8])
  f = jax.jit(jax.value_and_grad(lambda x: metrics.cross_entropy(x, targets).mean()))
  np.testing.assert_allclose(f(logits)[1], f(logits)[1])
  np.testing.assert_allclose(f(logits)[0], reference(logits, targets, 0.0).mean(), rtol=1e-6)


def test_exact_gelu_value_and_gradient_equal_jax_nn_gelu():
  from plait.layers import core  # pylint: disable=import-outside-toplevel
  x = 3 * jax.random.normal(jax.random.key(4), (7, 11))
  g = jax.random.normal(jax.random.key(5), (7, 11))
  np.testing.assert_allclose(core.exact_gelu(x), jax.nn.gelu(x, approximate=False),
                             rtol=1e-6, atol=1e-6)
  got = jax.vjp(core.exact_gelu, x)[1](g)[0]
  want = jax.vjp(lambda x: jax.nn.gelu(x, approximate=False), x)[1](g)[0]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  xb = x.astype(jnp.bfloat16)
  assert jax.vjp(core.exact_gelu, xb)[1](g.astype(jnp.bfloat16))[0].dtype == jnp.bfloat16
  np.testing.assert_allclose(core.exact_gelu(xb).astype(jnp.float32),
                             jax.nn.gelu(x, approximate=False), atol=3e-2)
