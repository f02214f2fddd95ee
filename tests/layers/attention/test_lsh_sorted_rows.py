"""lsh/sorted_rows.py: sorted copies gathered from sequence-major arrays, and the rounds back,
against plain indexing (values), and their custom gradients against autodiff of that
indexing, with no scatter in the backward."""
import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.attention.lsh.sorted_rows import from_sorted, to_sorted

B, L, H, R, D = 2, 10, 3, 2, 4


def orders(seed=0):
  rng = np.random.default_rng(seed)
  order = np.stack([[[rng.permutation(L) for _ in range(R)] for _ in range(H)]
                    for _ in range(B)]).astype(np.int32)            # (B, H, R, L)
  return jnp.asarray(order), jnp.asarray(np.argsort(order, axis=-1).astype(np.int32))


def plain_to_sorted(t, order):
  heads_first = jnp.broadcast_to(jnp.swapaxes(t, 1, 2)[:, :, None], (B, H, R, L, D))
  return jnp.take_along_axis(heads_first, order[..., None], axis=3)


def plain_from_sorted(s, sorted_slot):
  return jnp.take_along_axis(s, sorted_slot[..., None], axis=3).transpose(0, 3, 1, 2, 4)


def test_values_equal_plain_indexing():
  order, slot = orders()
  t = jax.random.normal(jax.random.key(0), (B, L, H, D))
  s = to_sorted(t, order, slot)
  o, t_np = np.asarray(order), np.asarray(t)
  want = np.stack([[[t_np[b, o[b, h, r], h] for r in range(R)] for h in range(H)]
                   for b in range(B)])
  np.testing.assert_array_equal(np.asarray(s), want)
  back = from_sorted(s, slot, order)   # each round's copy returns every row to its place
  np.testing.assert_array_equal(np.asarray(back), np.broadcast_to(t_np[:, :, :, None],
                                                                   (B, L, H, R, D)))
  x = jax.random.normal(jax.random.key(1), (B, H, R, L, D))
  np.testing.assert_array_equal(np.asarray(from_sorted(x, slot, order)),
                                np.asarray(plain_from_sorted(x, slot)))


def test_gradients_equal_autodiff_of_plain_indexing_without_a_scatter():
  order, slot = orders(1)
  t = jax.random.normal(jax.random.key(2), (B, L, H, D))
  x = jax.random.normal(jax.random.key(3), (B, H, R, L, D))
  w_s, w_b = (jax.random.normal(jax.random.key(k), shape) for k, shape in
              ((4, (B, H, R, L, D)), (5, (B, L, H, R, D))))
  ours = lambda t, x: (jnp.sum(to_sorted(t, order, slot) * w_s)
                       + jnp.sum(from_sorted(x, slot, order) ** 2 * w_b))
  plain = lambda t, x: (jnp.sum(plain_to_sorted(t, order) * w_s)
                        + jnp.sum(plain_from_sorted(x, slot) ** 2 * w_b))
  got, want = (jax.grad(f, argnums=(0, 1))(t, x) for f in (ours, plain))
  for g, w in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-6)
  assert 'scatter' not in str(jax.make_jaxpr(jax.grad(ours, argnums=(0, 1)))(t, x))
  assert 'scatter' in str(jax.make_jaxpr(jax.grad(plain, argnums=(0, 1)))(t, x))

