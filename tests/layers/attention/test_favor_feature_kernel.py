"""FAVOR+'s feature kernels (interpreter on CPU) equal favor_features' XLA maps: values and
gradients, odd lengths and widths, padded keys, no real key, bf16 output, vmapped pairs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention.favor_feature_kernel import (key_features_kernel,
                                                        query_features_kernel)
from plait.layers.attention.favor_features import (key_features, orthogonal_random_features,
                                                   query_features)
from tests.conftest import random_array

EPS = 1e-6


def maps(which, projection, mask=None, out_dtype=jnp.float32):
  """(kernel map, XLA map) of (L, d) inputs."""
  if which == 'query':
    return (lambda x: query_features_kernel(x, projection, EPS, out_dtype, interpret=True),
            lambda x: query_features(x, projection, 'softmax', EPS))
  return (lambda x: key_features_kernel(x, projection, mask, out_dtype, interpret=True),
          lambda x: key_features(x, projection, 'softmax', EPS, mask))


def value_and_grad(fn, x, seed):
  out, pull = jax.vjp(fn, x)
  w = random_array(out.shape, seed)
  return out, pull(jnp.asarray(w, out.dtype))[0]


def assert_close(got, want, tol):
  for x, y in zip(got, want):
    y = np.asarray(y, np.float32)
    np.testing.assert_allclose(np.asarray(x, np.float32), y, rtol=tol,
                               atol=tol * float(np.max(np.abs(y))))


@pytest.mark.parametrize('which', ['query', 'key'])
@pytest.mark.parametrize('length,d,m', [(37, 8, 20), (130, 5, 256), (64, 16, 16)])
def test_kernel_maps_equal_the_xla_maps(which, length, d, m):
  x = random_array((length, d), 1) * 0.8
  projection = orthogonal_random_features(jax.random.key(length), m, d, 'xla')
  mask = np.random.default_rng(2).random(length) < 0.7 if which == 'key' else None
  kernel, xla = maps(which, projection, mask)
  got = value_and_grad(kernel, x, 3)
  assert got[0].shape == (length, m) and got[1].shape == (length, d)
  assert_close(got, value_and_grad(xla, x, 3), 1e-5)
  if which == 'key':
    assert not np.any(np.asarray(got[0])[~mask]) and not np.any(np.asarray(got[1])[~mask])


def test_no_real_key_gives_zero_features_and_gradients():
  x = random_array((20, 8), 4)
  projection = orthogonal_random_features(jax.random.key(0), 16, 8, 'xla')
  kernel, _ = maps('key', projection, np.zeros(20, bool))
  out, grad = value_and_grad(kernel, x, 5)
  assert np.all(np.asarray(out) == 0) and np.all(np.asarray(grad) == 0)


def test_bfloat16_inputs_outputs_and_gradients():
  """bf16 q or k in, bf16 features out and a bf16 gradient, against float32 XLA maps of the
  same bf16-rounded inputs."""
  x = jnp.asarray(random_array((50, 16), 6), jnp.bfloat16)
  projection = orthogonal_random_features(jax.random.key(1), 32, 16, 'xla')
  for which in ('query', 'key'):
    kernel, xla = maps(which, projection, None, jnp.bfloat16)
    got = value_and_grad(kernel, x, 9)
    assert got[0].dtype == jnp.bfloat16 and got[1].dtype == jnp.bfloat16
    assert_close(got, value_and_grad(xla, x.astype(jnp.float32), 9), 2e-2)


def test_vmapped_pairs_with_their_own_projections():
  """The layer vmaps the kernels over (batch, head) pairs, each head its own projection."""
  x = random_array((2, 3, 40, 8), 7)
  projections = jax.vmap(lambda key: orthogonal_random_features(key, 24, 8, 'xla'))(
      jax.random.split(jax.random.key(2), 3))
  for which in ('query', 'key'):
    one = lambda x1, p1, which=which: maps(which, p1)[0](x1)
    want = lambda x1, p1, which=which: maps(which, p1)[1](x1)
    batched = jax.vmap(jax.vmap(one), (0, None))
    oracle = jax.vmap(jax.vmap(want), (0, None))
    assert_close(value_and_grad(lambda t: batched(t, projections), x, 8),
                 value_and_grad(lambda t: oracle(t, projections), x, 8), 1e-5)


def test_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match='favor feature kernels.*projection'):
    query_features_kernel(np.ones((8, 4), np.float32), np.ones((16, 5), np.float32), EPS,
                          jnp.float32, interpret=True)


@pytest.mark.parametrize('which', ['query', 'key'])
def test_16bit_inputs_take_the_projection_in_two_pieces(which, monkeypatch):
  """bf16 x against float32 XLA maps of the same x, float32 features out: the projection's
  hi + lo pieces ('split') make the logits as float32 w would (to ~2^-16); hi alone
  ('single') is off by ~2^-9 of each logit, so this check fails on it."""
  from plait.layers.attention import favor_feature_kernel as ffk  # pylint: disable=import-outside-toplevel
  x = jnp.asarray(random_array((64, 16), 10) * 2.0, jnp.bfloat16)
  projection = orthogonal_random_features(jax.random.key(3), 64, 16, 'xla')
  kernel, xla = maps(which, projection)
  want = np.asarray(xla(x.astype(jnp.float32)))
  errors = {}
  for dots in ('split', 'single'):
    monkeypatch.setattr(ffk, 'PROJECTION_DOTS', dots)
    got = np.asarray(kernel(x))
    errors[dots] = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
  assert errors['split'] < 1e-4 < 1e-3 < errors['single'], errors


def test_rejects_an_unknown_projection_dots_setting(monkeypatch):
  from plait.layers.attention import favor_feature_kernel as ffk  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(ffk, 'PROJECTION_DOTS', 'fp8')
  with pytest.raises(ValueError, match='PROJECTION_DOTS.*fp8'):
    query_features_kernel(np.ones((8, 4), jnp.bfloat16), np.ones((16, 4), np.float32), EPS,
                          jnp.float32, interpret=True)


@pytest.mark.parametrize('dots,pieces', [('tf32', 1), ('split', 2)])
def test_query_gradient_kernel_projects_each_tile_once(dots, pieces, monkeypatch):
  """The forward kernel's row max comes to the gradient kernel as a residual: per feature
  tile, the projection's pieces and the gradient's dot, no max pass."""
  from plait.layers.attention import favor_feature_kernel as ffk  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(ffk, 'PROJECTION_DOTS', dots)
  projection = orthogonal_random_features(jax.random.key(0), 256, 64, 'xla')
  loss = lambda x: jnp.sum(query_features_kernel(x, projection, EPS, jnp.bfloat16,
                                                 interpret=True).astype(jnp.float32))
  jaxpr = jax.make_jaxpr(jax.grad(loss))(jnp.ones((128, 64), jnp.bfloat16)).jaxpr
  counts = {str(e.params['name']): sum(q.primitive.name == 'dot_general'
                                       for q in e.params['jaxpr'].eqns)
            for e in jaxpr.eqns if e.primitive.name == 'pallas_call'}
  tiles = 256 // min(ffk._FEATURES, 256)  # pylint: disable=protected-access
  assert counts == {'plait_favor_query_features': 2 * tiles * pieces,  # max pass, then features
                    'plait_favor_query_grad_features': tiles * (pieces + 1)}, counts
