"""`sparse_attention(rows=..., head_fold=...)`: the kernels read each block's rows through a
permutation and write the results back to the rows' own positions (LSH's sorted order
without sorted copies). Equal, values and gradients, to the same kernels on permuted copies
with the results permuted back; in the Pallas interpreter."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention import sparse_kernel
from plait.layers.attention.block_plan import block_plan
from tests.conftest import random_array

B, H, N, BS, D = 2, 2, 4, 8, 16   # H: the inputs' heads; the problem has H * fold
L = N * BS
LISTS = [[0, 1], [0, 1, 2], [1, 2, 3], [0, 3]]   # every row sees its own block


def permutations(heads, seed):
  """(B, heads, L) int32: a random permutation of [0, L) per pair."""
  rng = np.random.default_rng(seed)
  return jnp.asarray(np.stack([[rng.permutation(L) for _ in range(heads)]
                               for _ in range(B)]), jnp.int32)


def gathered(t, rows, fold):
  """(B, H, L, ...) -> the problem's (B, H * fold, L, ...): head h's rows in slot order."""
  t = jnp.repeat(t, fold, axis=1)
  return jnp.take_along_axis(t, rows.reshape(rows.shape + (1,) * (t.ndim - 3)), axis=2)


def scattered(t, rows):
  """Slot-order results (B, H', L, ...) -> the rows' own order."""
  inverse = jnp.argsort(rows, axis=-1)
  return jnp.take_along_axis(t, inverse.reshape(inverse.shape + (1,) * (t.ndim - 3)), axis=2)


@pytest.mark.parametrize('causal,fold,shared,sequence_major', [
    (False, 1, False, False), (True, 2, True, False), (True, 1, True, True),
    (False, 2, False, True)])
def test_gathered_rows_equal_permuted_copies(causal, fold, shared, sequence_major):
  plan = block_plan(LISTS, width=3)
  rows = permutations(H * fold, 0)
  q, k, v = (jnp.asarray(random_array((B, H, L, D), 20 + i)) for i in range(3))
  key_scale = jnp.asarray(1.0 + 0.5 * np.abs(random_array((B, H, L), 23)))
  q_pos, k_pos = rows, rows.at[1, 0, 5].set(-1)   # slot order; one padded key
  w_out = jnp.asarray(random_array((B, H * fold, L, D), 30))
  w_lse = jnp.asarray(random_array((B, H * fold, L), 31))
  loss = lambda out, lse: jnp.sum(out * w_out) + jnp.sum(jax.nn.sigmoid(lse) * w_lse)
  options = dict(causal=causal, interpret=True, return_lse=True, self_penalty=0.7)

  def kernel(q, k, v, key_scale):
    return loss(*sparse_kernel.sparse_attention(
        q, None if shared else k, v, q_pos, k_pos, plan, key_scale=key_scale if shared else None,
        rows=rows, head_fold=fold, sequence_major=sequence_major, **options))

  def oracle(q, k, v, key_scale):
    g = lambda t: gathered(t, rows, fold)
    out, lse = sparse_kernel.sparse_attention(
        g(q), None if shared else g(k), g(v), q_pos, k_pos, plan,
        key_scale=g(key_scale) if shared else None, **options)
    return loss(scattered(out, rows), scattered(lse, rows))

  args, argnums = (q, k, v, key_scale), (0, 1, 2, 3)
  got = jax.jit(jax.value_and_grad(kernel, argnums))(*args)
  want = jax.jit(jax.value_and_grad(oracle, argnums))(*args)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-4)


def test_gathered_rows_errors():
  q = jnp.zeros((B, H, L, D))
  pos = jnp.zeros((1, 1, L), jnp.int32)
  rows = permutations(H * 2, 1)
  with pytest.raises(ValueError, match='head_fold must be >= 1, and 1 without rows; got 2'):
    sparse_kernel.sparse_attention(q, q, q, pos, pos, block_plan(LISTS, 3), head_fold=2)
  with pytest.raises(ValueError, match=r'rows must be \(B \| 1, H \| 1, 32\) with H = 4, '
                     r'got \(2, 2, 32\)'):
    sparse_kernel.sparse_attention(q, q, q, pos, pos, block_plan(LISTS, 3),
                                   rows=rows[:, :2], head_fold=2)
  with pytest.raises(ValueError, match='rows need a plan that splits no work row.*has 6 '
                     'extra forward and 6 extra backward work rows'):
    sparse_kernel.sparse_attention(q, q, q, pos, pos, block_plan(LISTS, 1), rows=rows,
                                   head_fold=2)
