"""LSH attention math for one (batch, head) pair, against exact numpy oracles."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention.lsh import chunked as lc
from plait.layers.attention.lsh import config
from plait.layers.attention.lsh import hashing as lh
from plait.layers.attention.reference import shared_qk_reference
from tests.conftest import random_array
from tests.layers.attention.lsh_oracle import (numpy_hash, shared_qk_oracle, vary_row_norms,
                                               window_union)


# Jitted once per config/shape: eager dispatch of the sort/gather code costs seconds.
lsh_attention = jax.jit(lc.lsh_attention, static_argnums=4)
lsh_weights = jax.jit(lc.lsh_attention_weights, static_argnums=3)
lsh_attention_replay = jax.jit(lc.lsh_attention, static_argnums=4)  # with buckets


def make_cfg(n_hashes=1, n_buckets=4, chunk_len=4, before=1, after=0, causal=False):
  return config.LSHConfig(n_hashes=n_hashes, factors=lh.check_n_buckets(n_buckets),
                      chunk_len=chunk_len, n_chunks_before=before, n_chunks_after=after,
                      causal=causal)


# Most tests share one multi-chunk, multi-round causal config (each config compiles once).
MAIN = make_cfg(n_hashes=3, n_buckets=4, chunk_len=4, before=1, after=0, causal=True)
ONE_CHUNK = make_cfg(n_hashes=4, n_buckets=2, chunk_len=12, causal=True)


def inputs(length, d=8, seed=0):
  return random_array((length, d), seed), random_array((length, d), seed + 100)


def rotations(cfg, d=8, seed=3):
  return lh.random_rotations(jax.random.key(seed), d, cfg.n_hashes, cfg.factors)


@pytest.mark.parametrize('n_buckets', [6, [4, 2], [2, 2, 2]])
def test_hash_matches_numpy_argmax_and_range(n_buckets):
  cfg = make_cfg(n_hashes=3, n_buckets=n_buckets)
  q, _ = inputs(40)
  rot = rotations(cfg)
  got = np.asarray(lh.hash_vectors(jnp.asarray(q), rot, cfg.factors))
  np.testing.assert_array_equal(got, numpy_hash(q, rot, cfg.factors))
  assert got.min() >= 0 and got.max() < cfg.n_buckets
  assert len(np.unique(got)) > cfg.n_buckets // 2  # The hash actually spreads tokens.


def test_factorized_buckets_use_fewer_rotation_columns():
  assert lh.rotation_columns((32, 32)) == 32 and lh.total_buckets((32, 32)) == 1024
  assert lh.rotation_columns((1024,)) == 512


@pytest.mark.parametrize('bad', [3, 0, [4, 3], [], 'x'])
def test_odd_or_invalid_bucket_counts_raise(bad):
  with pytest.raises(ValueError, match='n_buckets'):
    lh.check_n_buckets(bad)


@pytest.mark.parametrize('causal', [False, True])
def test_one_round_one_bucket_one_chunk_equals_dense_shared_qk(causal):
  cfg = make_cfg(n_buckets=1, chunk_len=16, causal=causal)
  q, v = inputs(16)
  out, buckets = lsh_attention(jnp.asarray(q), jnp.asarray(v), jnp.ones(16, bool),
                               rotations(cfg), cfg)
  want, _ = shared_qk_oracle(q, v, causal=causal)
  np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-5)
  assert buckets.shape == (1, 16) and not np.any(buckets)


def test_many_rounds_with_duplicates_one_chunk_equals_dense():
  # 4 rounds, 2 buckets, one chunk: every key is in every round's window (4 duplicates).
  q, v = inputs(12, seed=1)
  out, buckets = lsh_attention(jnp.asarray(q), jnp.asarray(v), jnp.ones(12, bool),
                               rotations(ONE_CHUNK), ONE_CHUNK)
  assert len(np.unique(buckets)) == 2  # the rounds really hash into 2 buckets
  want, _ = shared_qk_oracle(q, v, causal=True)
  np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-5)


UNION_CASES = {  # name: (n_hashes, n_buckets, chunk_len, before, after, causal, length, masked)
    'main': (3, 4, 4, 1, 0, True, 16, False),
    'main_padding_mask': (3, 4, 4, 1, 0, True, 16, True),
    'one_round_bidirectional': (1, 4, 4, 1, 0, False, 16, False),
    'bidirectional_padding_mask': (2, 4, 4, 1, 1, False, 16, True),   # ReformerEncoder's case
    'duplicates_4x2': (4, 2, 4, 1, 0, True, 16, False),
    'factorized_look_ahead': (3, [2, 4], 4, 1, 1, False, 20, False),
    'length_not_multiple_of_chunk': (2, 4, 4, 0, 0, True, 10, False),
}


def check_union_case(case, normalize_keys=True):
  """LSH on UNION_CASES[case] equals exact attention over the union of its windows."""
  n_hashes, n_buckets, chunk_len, before, after, causal, length, masked = UNION_CASES[case]
  cfg = make_cfg(n_hashes, n_buckets, chunk_len, before, after, causal)
  q, v = inputs(length, seed=2)
  if not normalize_keys:   # raw keys: rows of varied norms (the buckets do not change)
    cfg = dataclasses.replace(cfg, normalize_keys=False)
    q = vary_row_norms(q, seed=12)
  valid = np.ones(length, bool)
  if masked:
    valid[[3, 7, 8, 15]] = False
  rot = rotations(cfg)
  out, buckets = lsh_attention(jnp.asarray(q), jnp.asarray(v), jnp.asarray(valid), rot, cfg)
  hashed = numpy_hash(q, rot, cfg.factors)
  np.testing.assert_array_equal(buckets, np.where(valid, hashed, cfg.n_buckets))
  union, counts = window_union(hashed, valid, cfg)
  assert not union.all()  # several chunks: a real restriction
  if n_hashes > 1:
    assert counts.max() > 1  # some key sits in several rounds' windows: correction matters
  want, _ = shared_qk_oracle(q, v, valid, causal, union, normalize_keys)
  sees = np.any(union & valid[None, :], axis=1) & valid
  np.testing.assert_allclose(np.asarray(out)[sees], want[sees], atol=3e-5, rtol=1e-5)
  assert np.all(np.isfinite(out))
  if not normalize_keys:   # unit keys would be far off: ignoring the option fails above
    unit, _ = shared_qk_oracle(q, v, valid, causal, union)
    assert np.abs(unit[sees] - want[sees]).max() > 0.05


@pytest.mark.parametrize('case', list(UNION_CASES))
def test_multi_chunk_equals_exact_attention_over_union_of_windows(case):
  check_union_case(case)


@pytest.mark.parametrize('case', ['main', 'bidirectional_padding_mask'])
def test_raw_keys_multi_chunk_equal_exact_attention_over_union_of_windows(case):
  """normalize_keys=False: the queries themselves are the keys (numpy oracle's raw keys)."""
  check_union_case(case, normalize_keys=False)


def value_and_grads(fn, q, v, seed=11):
  """fn(q, v)'s output and the gradients (q, v) of a random projection of it (jitted)."""
  ct = random_array((q.shape[0], v.shape[1]), seed=seed)
  def loss(q, v):
    out = fn(q, v)
    return jnp.sum(out * ct), out
  (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(q, v)
  return np.asarray(out), [np.asarray(g) for g in grads]


@pytest.mark.parametrize('causal', [False, True])
def test_raw_keys_one_bucket_one_chunk_equal_dense_reference_values_and_grads(causal):
  """normalize_keys=False, one round of one bucket in one chunk: LSH is the dense JAX
  reference with raw keys (logits q_i.q_j/sqrt(d)), values and gradients, and clearly not
  the unit-key output."""
  cfg = dataclasses.replace(make_cfg(n_buckets=1, chunk_len=16, causal=causal),
                            normalize_keys=False)
  q, v = inputs(16, seed=13)
  q = jnp.asarray(vary_row_norms(q, seed=14))
  v, valid, rot = jnp.asarray(v), jnp.ones(16, bool), rotations(cfg)
  out, grads = value_and_grads(lambda q, v: lc.lsh_attention(q, v, valid, rot, cfg)[0], q, v)
  want, want_grads = value_and_grads(
      lambda q, v: shared_qk_reference(q, v, causal=causal, normalize_keys=False), q, v)
  np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-5)
  for g, w in zip(grads, want_grads):
    np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5)
  np.testing.assert_allclose(out, shared_qk_oracle(q, v, causal=causal,
                                                   normalize_keys=False)[0], atol=2e-5)
  unit_cfg = dataclasses.replace(cfg, normalize_keys=True)
  unit, _ = lsh_attention(q, v, valid, rot, unit_cfg)   # the unit-key test's compiled config
  assert np.abs(np.asarray(unit) - out).max() > 0.1


def test_effective_weights_equal_oracle_and_reproduce_output():
  q, v = inputs(16, seed=4)
  valid = jnp.ones(16, bool)
  rot = rotations(MAIN)
  weights = np.asarray(lsh_weights(jnp.asarray(q), valid, rot, MAIN))
  union, _ = window_union(numpy_hash(q, rot, MAIN.factors), np.ones(16, bool), MAIN)
  _, want = shared_qk_oracle(q, v, causal=True, allowed=union)
  np.testing.assert_allclose(weights, want, atol=1e-5)
  out, _ = lsh_attention(jnp.asarray(q), jnp.asarray(v), valid, rot, MAIN)
  np.testing.assert_allclose(out, weights @ v, atol=2e-5)


def test_causal_weights_never_reach_later_positions():
  for seed in range(3):
    q, _ = inputs(16, seed=5 + seed)
    weights = np.asarray(lsh_weights(jnp.asarray(q), jnp.ones(16, bool), rotations(MAIN), MAIN))
    assert np.all(np.triu(weights, k=1) == 0.0)
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)


def test_causal_one_chunk_outputs_ignore_later_tokens():
  q, v = inputs(12, seed=6)
  q2, v2 = q.copy(), v.copy()
  q2[7:], v2[7:] = inputs(5, seed=60)
  run = lambda a, b: np.asarray(lsh_attention(jnp.asarray(a), jnp.asarray(b), jnp.ones(12, bool),
                                              rotations(ONE_CHUNK), ONE_CHUNK)[0])
  # Equal up to summation order (the sort inside the chunk changes).
  np.testing.assert_allclose(run(q, v)[:7], run(q2, v2)[:7], atol=1e-6, rtol=1e-6)


def test_causal_multi_chunk_earlier_outputs_can_depend_on_later_buckets():
  """Documents the subtle dependence (see lsh.py): weights never reach j > i, but a later
  token in a lower bucket shifts i's sorted slot and so WHICH earlier tokens share its
  chunk. Changing only the last token therefore changes some earlier outputs."""
  q, v = inputs(16, seed=7)
  run = lambda a: np.asarray(lsh_attention(jnp.asarray(a), jnp.asarray(v), jnp.ones(16, bool),
                                           rotations(MAIN), MAIN)[0])
  base = run(q)
  changed = 0
  for seed in range(8):
    q2 = q.copy()
    q2[-1] = random_array((8,), seed + 200)
    changed += not np.allclose(run(q2)[:15], base[:15], atol=1e-4)
  assert changed > 0


def test_token_attends_to_itself_only_without_other_targets():
  q, v = inputs(12, seed=8)
  out, _ = lsh_attention(jnp.asarray(q), jnp.asarray(v), jnp.ones(12, bool),
                         rotations(ONE_CHUNK), ONE_CHUNK)
  np.testing.assert_allclose(out[0], v[0], atol=1e-6)  # position 0 sees only itself
  weights = np.asarray(lsh_weights(jnp.asarray(q), jnp.ones(12, bool), rotations(ONE_CHUNK),
                                   ONE_CHUNK))
  assert np.all(np.diag(weights)[1:] == 0.0)


def test_padded_keys_get_no_weight_and_their_values_do_not_matter():
  q, v = inputs(16, seed=9)
  valid = np.ones(16, bool)
  valid[[0, 5, 6, 13]] = False
  rot = rotations(MAIN)
  weights = np.asarray(lsh_weights(jnp.asarray(q), jnp.asarray(valid), rot, MAIN))
  assert np.all(weights[valid][:, ~valid] == 0.0)  # rows of padding queries: unspecified
  q2, v2 = q.copy(), v.copy()
  q2[~valid], v2[~valid] = inputs(4, seed=90)
  run = lambda a, b: np.asarray(lsh_attention(jnp.asarray(a), jnp.asarray(b),
                                              jnp.asarray(valid), rot, MAIN)[0])
  np.testing.assert_array_equal(run(q, v)[valid], run(q2, v2)[valid])


def test_given_buckets_are_replayed_exactly():
  q, v = inputs(16, seed=10)
  valid = jnp.ones(16, bool)
  out, buckets = lsh_attention(jnp.asarray(q), jnp.asarray(v), valid, rotations(MAIN), MAIN)
  # Nudge q (as a reversible backward's reconstruction would) and use other rotations:
  # with the given buckets, the sort and hence the output are still those of the first call.
  nudged = jnp.asarray(q) * (1 + 1e-7)
  replay, same = lsh_attention_replay(nudged, jnp.asarray(v), valid, rotations(MAIN, seed=99),
                                      MAIN, buckets)
  np.testing.assert_array_equal(same, buckets)
  np.testing.assert_allclose(replay, out, atol=1e-6)
