"""Head chunking projects q/k/v per head group inside the loop: same values, less memory."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plait.layers as tl
from tests.conftest import random_array
from tests.layers.attention.conftest import randomize_biases

D, H, B, L = 16, 4, 2, 32

# name -> (factory(head_chunk_size, mode) -> layer, uses a mask)
LAYERS = {
    'lsh_causal': (lambda h, mode: tl.LSHSelfAttention(
        D, n_heads=H, n_hashes=2, n_buckets=4, chunk_len=8, causal=True, dropout=0.1,
        head_chunk_size=h, max_len=L, mode=mode), False),
    'lsh_masked': (lambda h, mode: tl.LSHSelfAttention(
        D, n_heads=H, n_hashes=2, n_buckets=4, chunk_len=8, use_mask=True,
        head_chunk_size=h, mode=mode), True),
    'dense_causal': (lambda h, mode: tl.CausalAttention(
        D, n_heads=H, head_chunk_size=h, max_len=L, mode=mode), False),
    'dense_masked': (lambda h, mode: tl.SelfAttention(
        D, n_heads=H, use_mask=True, head_chunk_size=h, mode=mode), True),
    'chunked_causal': (lambda h, mode: tl.ChunkedCausalAttention(
        D, n_heads=H, chunk_len=8, head_chunk_size=h, mode=mode), False),
    'favor': (lambda h, mode: tl.FavorAttention(
        D, n_heads=H, nb_features=8, use_mask=True, head_chunk_size=h, mode=mode), True),
    'favor_causal': (lambda h, mode: tl.CausalFavorAttention(
        D, n_heads=H, nb_features=8, chunk_size=8, head_chunk_size=h, max_len=L,
        mode=mode), False),
    'block_sparse': (lambda h, mode: tl.BlockSparseAttention(
        D, n_heads=H, block_size=4, num_rand_blocks=1, use_mask=True, head_chunk_size=h,
        mode=mode), True),
    'block_sparse_causal': (lambda h, mode: tl.CausalBlockSparseAttention(
        D, n_heads=H, block_size=4, num_rand_blocks=1, head_chunk_size=h, max_len=L,
        mode=mode), False),
}


def _inputs(uses_mask):
  x = random_array((B, L, D), 1)
  if not uses_mask:
    return x
  lengths = jnp.array([L, L - 7])
  return x, jnp.arange(L)[None, :] < lengths[:, None]


# Groups of one head, the costliest to compile (4 groups), run for every kind under
# `pytest -m slow`; by default for the kinds below, while groups of two run for every kind.
# One-head groups of the others stay covered by default: FAVOR+ by test_favor.py's
# test_head_chunking_does_not_change_the_output, block-sparse by test_block_sparse.py's
# test_layer_equals_numpy_multihead_under_the_pattern, causal LSH by 'lsh_masked' here and
# test_lsh_blocked.py's test_layer_with_blocks_equals_layer_without.
ONE_HEAD_GROUPS_BY_DEFAULT = {'dense_causal', 'dense_masked', 'chunked_causal', 'lsh_masked',
                              'block_sparse_causal'}


def _group_cases():
  return [pytest.param(name, h, marks=() if h == 2 or name in ONE_HEAD_GROUPS_BY_DEFAULT
                       else pytest.mark.slow)
          for name in sorted(LAYERS) for h in (1, 2)]


@pytest.mark.parametrize('name, head_chunk_size', _group_cases())
def test_values_and_gradients_equal_unchunked(name, head_chunk_size):
  make, uses_mask = LAYERS[name]
  inputs = _inputs(uses_mask)
  whole, grouped = make(None, 'train'), make(head_chunk_size, 'train')
  weights, state = whole.init(inputs)
  weights = randomize_biases(weights)
  rng = jax.random.key(3)

  def run(layer):
    def loss(w, x):
      full = (x, inputs[1]) if uses_mask else x
      y, new_state = layer.pure_fn(full, w, state, rng)
      y = y[0] if uses_mask else y
      if uses_mask:   # padding rows may differ between kinds' conventions; compare real rows
        y = jnp.where(inputs[1][..., None], y, 0.0)
      return jnp.sum(jnp.sin(y)), (y, new_state)
    x = inputs[0] if uses_mask else inputs
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(weights, x)

  (got_loss, (got_y, got_state)), got_grads = run(grouped)
  (want_loss, (want_y, want_state)), want_grads = run(whole)
  np.testing.assert_allclose(got_y, want_y, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(got_state), jax.tree_util.tree_leaves(want_state)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  assert (jax.tree_util.tree_structure(got_grads)
          == jax.tree_util.tree_structure(want_grads))
  for a, b in zip(jax.tree_util.tree_leaves(got_grads), jax.tree_util.tree_leaves(want_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('name', ['lsh_causal', 'dense_causal', 'favor_causal',
                                  'block_sparse_causal'])
def test_decoding_equals_unchunked(name):
  make, _ = LAYERS[name]
  x = random_array((B, 12, D), 2)
  whole, grouped = make(None, 'predict'), make(2, 'predict')
  weights, state = whole.init(x[:, :1])
  weights = randomize_biases(weights)
  step_whole, step_grouped = jax.jit(whole.pure_fn), jax.jit(grouped.pure_fn)
  s_whole = s_grouped = state
  for lo, hi in [(0, 8)] + [(t, t + 1) for t in range(8, 12)]:   # a prompt, then tokens
    y_whole, s_whole = step_whole(x[:, lo:hi], weights, s_whole)
    y_grouped, s_grouped = step_grouped(x[:, lo:hi], weights, s_grouped)
    np.testing.assert_allclose(y_grouped, y_whole, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(s_grouped), jax.tree_util.tree_leaves(s_whole)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_grad_memory_has_no_full_width_queries_or_values():
  # Wide heads (n_heads * d_head = 8 * d_model) so full-width q/v dominate if they exist.
  # Projecting q/k/v for all heads before the loop kept ~8.8 q-sized buffers alive here;
  # projecting per group inside it keeps ~4.1 (the attention output and its cotangent).
  n_heads, d_head, d_model, length = 8, 64, 64, 1024
  layer = tl.LSHSelfAttention(d_model, n_heads=n_heads, d_head=d_head, n_hashes=1,
                              n_buckets=length // 32, chunk_len=32, causal=True,
                              head_chunk_size=1)
  x = random_array((1, length, d_model), 4)
  weights, state = layer.init(x)
  loss = lambda w, x: jnp.sum(layer.pure_fn(x, w, state, jax.random.key(0))[0])
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(weights, x).compile()
  q_bytes = length * n_heads * d_head * 4
  in_q_sizes = compiled.memory_analysis().temp_size_in_bytes / q_bytes
  assert in_q_sizes < 6.0, f'grad temp = {in_q_sizes:.2f} full-width q sizes'


def test_weights_layout_is_unchanged_by_head_chunking():
  x = random_array((B, L, D), 1)
  for name in ['lsh_causal', 'dense_causal']:
    make, _ = LAYERS[name]
    w_whole, _ = make(None, 'train').init(x)
    w_grouped, _ = make(2, 'train').init(x)
    shapes = functools.partial(jax.tree_util.tree_map, jnp.shape)
    assert shapes(w_whole) == shapes(w_grouped)
