"""Blocked LSH rounds (chunks_per_block) equal the all-at-once path and use less memory."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plait.layers as tl
from plait.layers.attention.lsh import chunked as lc
from plait.layers.attention.lsh import config
from plait.layers.attention.lsh import hashing as lh
from tests.conftest import random_array
from tests.layers.attention.lsh_oracle import vary_row_norms


def make_cfg(n_hashes, n_buckets, chunk_len, before, after, causal, per_block):
  return config.LSHConfig(n_hashes=n_hashes, factors=lh.check_n_buckets(n_buckets),
                      chunk_len=chunk_len, n_chunks_before=before, n_chunks_after=after,
                      causal=causal, chunks_per_block=per_block)


def value_and_grads(cfg, q, v, valid, rot):
  """The output and the gradients (q, v) of a random projection of it."""
  ct = random_array((q.shape[0], v.shape[1]), seed=9)
  def loss(q, v):
    out, _ = lc.lsh_attention(q, v, valid, rot, cfg)
    return jnp.sum(out * ct), out
  (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(q, v)
  return np.asarray(out), [np.asarray(g) for g in grads]


CASES = {  # name: (n_hashes, n_buckets, chunk_len, before, after, causal, length, masked, block)
    'causal_2_rounds': (2, 8, 4, 1, 0, True, 64, False, 3),
    'bidirectional_look_ahead_mask': (3, [2, 4], 4, 1, 1, False, 70, True, 2),
    'one_round_exact_blocks': (1, 4, 4, 1, 0, False, 40, False, 5),
    'halo_wider_than_block': (2, 16, 8, 2, 1, True, 200, True, 1),
    'no_neighbours_4_rounds': (4, 4, 4, 0, 0, True, 30, False, 1),
    'one_block_holds_all': (2, 8, 4, 1, 0, True, 64, False, 100),
}


def check_blocked_case(case, normalize_keys=True):
  """Blocked CASES[case] equals all at once, values and gradients; returns the output and
  (q, v, valid, rotations, cfg)."""
  n_hashes, n_buckets, chunk_len, before, after, causal, length, masked, block = CASES[case]
  cfg = make_cfg(n_hashes, n_buckets, chunk_len, before, after, causal, block)
  cfg = dataclasses.replace(cfg, normalize_keys=normalize_keys)
  q, v = random_array((length, 16), seed=1), random_array((length, 8), seed=2)
  if not normalize_keys:   # raw keys: rows of varied norms (the buckets do not change)
    q = vary_row_norms(q, seed=5)
  valid = np.ones(length, bool)
  if masked:
    valid = np.random.default_rng(3).random(length) > 0.3
  rot = lh.random_rotations(jax.random.key(4), 16, n_hashes, cfg.factors)
  want, want_grads = value_and_grads(dataclasses.replace(cfg, chunks_per_block=None),
                                     q, v, jnp.asarray(valid), rot)
  got, got_grads = value_and_grads(cfg, q, v, jnp.asarray(valid), rot)
  # Everywhere, padding positions included: the blocked windows wrap like the roll does.
  np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-6)
  for g, w in zip(got_grads, want_grads):
    np.testing.assert_allclose(g, w, atol=2e-6, rtol=1e-6)
  return got, (q, v, jnp.asarray(valid), rot, cfg)


@pytest.mark.parametrize('case', list(CASES))
def test_blocked_equals_all_at_once_values_and_grads(case):
  check_blocked_case(case)


@pytest.mark.parametrize('case', ['causal_2_rounds', 'bidirectional_look_ahead_mask'])
def test_raw_keys_blocked_equals_all_at_once_values_and_grads(case):
  """normalize_keys=False (the queries are the keys) on both paths; blocked with unit keys
  is far off, so a blocked path ignoring the option fails."""
  got, (q, v, valid, rot, cfg) = check_blocked_case(case, normalize_keys=False)
  unit_cfg = dataclasses.replace(cfg, normalize_keys=True)
  unit = jax.jit(lc.lsh_attention, static_argnums=4)(q, v, valid, rot, unit_cfg)[0]
  assert np.abs(np.asarray(unit) - got).max() > 0.05


def test_auto_blocks_only_beyond_the_logits_budget():
  cfg = make_cfg(2, 8, 128, 1, 0, True, 'auto')
  per_block = config.AUTO_BLOCK_LOGITS // (128 * 256)
  assert cfg.resolve_block(per_block // 2) is None           # all rounds fit in one block
  assert cfg.resolve_block(per_block) == per_block
  assert dataclasses.replace(cfg, chunks_per_block=None).resolve_block(10 ** 6) is None
  assert dataclasses.replace(cfg, chunks_per_block=7).resolve_block(3) == 7


def _grad_temp_bytes(cfg, length, d=16):
  rot = lh.random_rotations(jax.random.key(0), d, cfg.n_hashes, cfg.factors)
  def loss(q, v):
    return jnp.sum(lc.lsh_attention(q, v, jnp.ones(length, bool), rot, cfg)[0])
  s = jax.ShapeDtypeStruct((length, d), jnp.float32)
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(s, s).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def test_blocks_cut_the_compiled_memory_of_the_gradient(monkeypatch):
  # 2 rounds of 128 chunks of 64, windows of 128 keys: all at once, ~31 MiB of
  # temporaries (float32 logits alone are 8 MiB); blocks of 8 chunks, ~7 MiB.
  whole = _grad_temp_bytes(make_cfg(2, 16, 64, 1, 0, True, None), 8192)
  blocked = _grad_temp_bytes(make_cfg(2, 16, 64, 1, 0, True, 8), 8192)
  assert blocked * 3 < whole, (blocked, whole)
  # 'auto' blocks once the budget is exceeded (a tiny budget stands in for 2^25 logits).
  monkeypatch.setattr(config, 'AUTO_BLOCK_LOGITS', 8 * 64 * 128)
  auto = _grad_temp_bytes(make_cfg(2, 16, 64, 1, 0, True, 'auto'), 8192)
  assert auto * 3 < whole, (auto, whole)


def test_layer_with_blocks_equals_layer_without():
  x = jnp.asarray(random_array((2, 96, 32), seed=5))
  make = lambda per_block: tl.LSHSelfAttention(
      d_model=32, n_heads=2, n_hashes=2, n_buckets=4, chunk_len=8, causal=True,
      head_chunk_size=1, chunks_per_block=per_block)
  weights, state = make(None).init(jax.ShapeDtypeStruct(x.shape, x.dtype))
  rng = jax.random.key(6)
  def run(layer):
    def loss(w):
      y, _ = layer.pure_fn(x, w, state, rng=rng)
      return jnp.sum(y * jnp.cos(y)), y
    return jax.jit(jax.value_and_grad(loss, has_aux=True))(weights)
  (_, want), want_g = run(make(None))
  (_, got), got_g = run(make(3))
  np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5)
  for g, w in zip(jax.tree_util.tree_leaves(got_g), jax.tree_util.tree_leaves(want_g)):
    np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize('bad', [0, -1, 2.5, 'big', True])
def test_bad_chunks_per_block_raises_naming_the_layer(bad):
  with pytest.raises(ValueError, match='LSHKind: chunks_per_block'):
    tl.LSHSelfAttention(d_model=16, n_heads=2, chunks_per_block=bad)
