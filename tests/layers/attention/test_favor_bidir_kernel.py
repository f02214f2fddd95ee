"""Bidirectional FAVOR+ on its Pallas kernels (interpreter on CPU) equals the XLA path.

Values and q/k/v gradients on random inputs: padding masks (one batch element with no real
key), odd lengths and widths, cross lengths, per-head and shared projections, one and many
segments; bf16 inputs; the layer's paths in train mode with redrawn features; selection
and errors; and that no feature map exists outside the kernels.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention import FavorAttention, FavorKind, favor_bidir_kernel
from plait.layers.attention.favor_bidir_kernel import favor_attention_kernel
from plait.layers.attention.favor_features import orthogonal_random_features
from plait.shapes import ShapeDtype
from tests.conftest import random_array
from tests.layers.attention.test_favor_kernel import assert_close, value_and_grads


def xla_path(q, k, v, mask, projection):
  """FavorKind's XLA path per (batch, head) pair with the given projection(s)."""
  kind = FavorKind(projection.shape[-2], causal=False, recompute_features=False)
  heads = q.shape[1]
  if projection.ndim == 2:
    projection = jnp.broadcast_to(projection, (heads,) + projection.shape)
  over_heads = jax.vmap(kind._attend_full, in_axes=(0, 0, 0, None, 0))  # pylint: disable=protected-access
  return jax.vmap(over_heads, in_axes=(0, 0, 0, None if mask is None else 0, None))(
      q, k, v, mask, projection)


def inputs(batch, heads, lq, lk, d, dv, m, per_head, dtype=jnp.float32):
  q = jnp.asarray(random_array((batch, heads, lq, d), 1), dtype)
  k = jnp.asarray(random_array((batch, heads, lk, d), 2), dtype)
  v = jnp.asarray(random_array((batch, heads, lk, dv), 3), dtype)
  keys = jax.random.split(jax.random.key(4), heads)
  projection = (jax.vmap(lambda key: orthogonal_random_features(key, m, d))(keys) if per_head
                else orthogonal_random_features(keys[0], m, d))
  return q, k, v, projection


def key_mask(batch, lk):
  """Element 0 has its last 17 keys padded, element 1 no real key, the others none padded."""
  real = np.full((batch,), lk)
  real[0], real[1] = lk - 17, 0
  return jnp.asarray(np.arange(lk)[None] < real[:, None])


@pytest.mark.parametrize('batch,heads,lq,lk,d,dv,m,masked,per_head', [
    (3, 2, 100, 130, 24, 20, 20, True, True),     # odd lengths, widths and features
    (2, 2, 128, 128, 16, 16, 32, False, False),   # whole blocks, shared projection
    (2, 1, 70, 64, 32, 8, 64, True, False),       # cross lengths
    (2, 2, 90, 90, 16, 16, 130, True, True),      # two feature tiles, the second mostly padding
])
def test_kernel_equals_xla_path(batch, heads, lq, lk, d, dv, m, masked, per_head):
  check_against_xla_path(batch, heads, lq, lk, d, dv, m, masked, per_head)


def test_feature_tiles_the_last_all_padding(monkeypatch):
  """Tiles of 64 over 130 features (padded to 256): four tiles, the last with no real one."""
  monkeypatch.setattr(favor_bidir_kernel, '_FEATURES', 64)
  check_against_xla_path(2, 2, 90, 90, 16, 16, 130, True, True)


def test_one_segment_per_pair_loops_over_its_blocks(monkeypatch):
  """Large batches: each pair's keys and queries in one program's loop."""
  monkeypatch.setattr(favor_bidir_kernel, '_PROGRAMS', 1)
  check_against_xla_path(3, 2, 100, 130, 24, 20, 20, True, True)


def check_against_xla_path(batch, heads, lq, lk, d, dv, m, masked, per_head):
  q, k, v, projection = inputs(batch, heads, lq, lk, d, dv, m, per_head)
  mask = key_mask(batch, lk) if masked else None
  kernel = lambda q, k, v: favor_attention_kernel(q, k, v, mask, projection, interpret=True)
  got = value_and_grads(kernel, q, k, v)
  assert got[0].shape == (batch, heads, lq, dv) and got[0].dtype == jnp.float32
  assert_close(got, value_and_grads(lambda q, k, v: xla_path(q, k, v, mask, projection),
                                    q, k, v), tol=2e-5)
  if masked:  # No real key: output 0, and nothing flows back.
    assert not np.any(np.asarray(got[0][1])) and not np.any(np.asarray(got[1][0][1]))


def test_bfloat16_inputs_stay_close_to_the_float32_xla_path():
  q, k, v, projection = inputs(2, 2, 100, 100, 32, 32, 64, True, jnp.bfloat16)
  mask = key_mask(2, 100)
  got = value_and_grads(
      lambda q, k, v: favor_attention_kernel(q, k, v, mask, projection, interpret=True), q, k, v)
  assert got[0].dtype == jnp.bfloat16 and all(g.dtype == jnp.bfloat16 for g in got[1])
  f32 = lambda t: t.astype(jnp.float32)
  want = value_and_grads(lambda q, k, v: xla_path(f32(q), f32(k), f32(v), mask, projection),
                         q, k, v)
  assert_close(got, want, tol=2e-2)


def layer_values_and_grads(implementation, x, mask):
  layer = FavorAttention(32, n_heads=2, nb_features=24, use_mask=True, mode='train',
                         implementation=implementation)
  weights, state = layer.init((ShapeDtype(x.shape), ShapeDtype(mask.shape, jnp.bool_)),
                              rng=jax.random.key(0))
  def loss(x, weights):
    (y, _), _ = layer.pure_fn((x, mask), weights, state, rng=jax.random.key(5))
    return jnp.sum(y * jnp.asarray(random_array(y.shape, 6)))
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, weights)


def test_layer_kernel_path_equals_xla_path_with_redrawn_features():
  """Train mode draws one projection per head from the rng: the same on both paths."""
  x = jnp.asarray(random_array((3, 90, 32), 7))
  mask = key_mask(3, 90)
  got = layer_values_and_grads('interpret', x, mask)
  assert_close(got, layer_values_and_grads('xla', x, mask), tol=2e-5)
  again = layer_values_and_grads('interpret', x * 1.0, mask)
  assert_close(got, again, tol=0)  # Deterministic.


def test_selection_and_errors():
  kind = FavorKind(256)
  on_gpu = jax.default_backend() == 'gpu'
  assert kind.pick_implementation(jnp.bfloat16, 64) == ('pallas' if on_gpu else 'xla')
  assert kind.pick_implementation(jnp.float32, 64) == 'xla'
  # Keeping the features (XLA) is the faster choice; the kernels keep none.
  assert FavorKind(256, recompute_features=False).pick_implementation(jnp.bfloat16, 64) == 'xla'
  assert FavorKind(16, recompute_features=False, implementation='interpret').pick_implementation(
      jnp.float32, 8) == 'interpret'
  assert FavorKind(1024).pick_implementation(jnp.bfloat16, 64) == 'xla'   # too many features
  assert FavorKind(256, kernel='relu').pick_implementation(jnp.bfloat16, 64) == 'xla'
  assert FavorKind(16, implementation='interpret').pick_implementation(jnp.float32, 8) == (
      'interpret')
  with pytest.raises(ValueError, match="Favor: implementation='interpret': the bidirectional"):
    FavorKind(16, kernel='relu', implementation='interpret')
  if not on_gpu:
    with pytest.raises(ValueError, match="Favor: implementation='pallas' needs a GPU"):
      FavorKind(16, implementation='pallas').pick_implementation(jnp.bfloat16, 64)
  else:
    with pytest.raises(ValueError, match="takes kernel='softmax', nb_features <= 512"):
      FavorKind(1024, implementation='pallas').pick_implementation(jnp.bfloat16, 64)
  q, k, v, projection = inputs(1, 2, 16, 16, 8, 8, 16, True)
  with pytest.raises(ValueError, match=r'favor_attention_kernel: needs .* projection \(3, 16'):
    favor_attention_kernel(q, k, v, None, projection[np.array([0, 1, 1])], interpret=True)
  layer = FavorAttention(16, n_heads=2, nb_features=16, implementation='interpret')
  weights, state = layer.init(ShapeDtype((1, 8, 16)), rng=jax.random.key(0))
  with pytest.raises(Exception, match='redraw=True in train mode draws random features'):
    layer.pure_fn(jnp.ones((1, 8, 16)), weights, state, rng=None)


def big_arrays(jaxpr, limit):
  """Shapes of values with more than `limit` elements made outside the pallas_calls."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'pallas_call':
      continue
    found += [tuple(o.aval.shape) for o in eqn.outvars
              if hasattr(o.aval, 'shape') and np.prod(o.aval.shape) > limit]
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      found += big_arrays(sub, limit)
  return found


def test_no_feature_map_outside_the_kernels():
  """Forward and backward make no (L, m) array: every value outside the kernels is at
  most q's size (m = 3 d here). The XLA path makes them, which shows the check can fail."""
  batch, heads, length, d, m = 2, 2, 192, 16, 48
  q, k, v, projection = inputs(batch, heads, length, length, d, d, m, True, jnp.bfloat16)
  mask = key_mask(batch, length)
  def jaxpr_of(attend):
    loss = lambda q, k, v: jnp.sum(attend(q, k, v).astype(jnp.float32))
    return jax.make_jaxpr(jax.grad(loss, (0, 1, 2)))(q, k, v).jaxpr
  limit = batch * heads * length * d
  kernel = jaxpr_of(lambda q, k, v: favor_attention_kernel(q, k, v, mask, projection,
                                                           interpret=True))
  assert big_arrays(kernel, limit) == []
  assert (batch, heads, length, m) in big_arrays(
      jaxpr_of(lambda q, k, v: xla_path(q, k, v, mask, projection)), limit)
