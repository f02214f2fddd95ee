"""LSH rounds on the fused kernel (Pallas interpreter on CPU) equal the XLA LSH path.

Values and gradients (q, which also makes the shared keys, and v) on random inputs:
causal and bidirectional, 1 and 2 hash rounds, padding masks, odd lengths, chunks cut
into several kernel blocks, train-mode rotations per pair; and one bucket against the
dense shared-QK oracle, where the 2-round duplicate count must cancel exactly; bf16
against the bf16 XLA path. The kernel call with key_scale=shared_qk_scale(q) (no key
array) equals the call with k=shared_qk_keys(q) (float32, bf16), and keeps no keys for the
backward.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention import sparse_kernel
from plait.layers.attention.lsh import LSHKind
from plait.layers.attention.lsh.fused import banded_plan
from plait.layers.attention.lsh.hashing import shared_qk_keys, shared_qk_scale
from plait.layers.attention.lsh.window import SELF_PENALTY
from plait.layers.attention.base import per_pair_keys
from tests.conftest import random_array
from tests.gpu_lowering import (SPARSE_KERNELS, abstract_gpu, kernel_names, lowered_for_cuda,
                                pallas_calls)
from tests.layers.attention.lsh_oracle import shared_qk_oracle, vary_row_norms

B, H, D = 2, 2, 16


def pair_rngs(mode):
  return per_pair_keys(jax.random.key(7), B, H) if mode == 'train' else None


def run(kind, q, v, mask, mode='eval'):
  out, state = kind.attend_batched(q, None, v, mask, (), pair_rngs(mode), mode)
  assert state == ()   # no state outside predict mode
  return out


def value_and_grads(kind, q, v, mask, mode='eval', seed=0):
  """Output and gradients of <out, w> for a random w that is 0 on padding queries (their
  outputs are unspecified: the kernel gives 0 where the XLA path averages masked values)."""
  w = random_array(q.shape, seed + 100)
  if mask is not None:
    w = w * np.asarray(mask)[:, None, :, None]
  def go(q, v):
    out, pull = jax.vjp(lambda q, v: run(kind, q, v, mask, mode), q, v)
    return out, pull(jnp.asarray(w, out.dtype))
  return jax.jit(go)(q, v)


def inputs(length, seed, masked, d=D):
  q, v = (jnp.asarray(random_array((B, H, length, d), seed + i)) for i in range(2))
  mask = None
  if masked:
    mask = np.random.default_rng(seed).random((B, length)) < 0.75
    mask[1, length // 2:] = False   # a long padded tail in batch element 1
    mask = jnp.asarray(mask)
  return q, v, mask


# name: (causal, n_hashes, chunk_len, before, after, length, masked, mode, d_head). Each
# case compiles both paths (~10 s on a loaded CPU): three cover the kernel's terms by default
# (2 rounds, padding, odd lengths; causal with 3 kernel blocks per chunk, bidirectional
# looking ahead; heads of 24, run on the kernel of 32 zero-padded); 1 round is also checked
# against the dense oracle below. Train mode only changes the rotations (per pair, from the
# rng).
CASES = {
    'causal_2hash_padded_odd_3_blocks_per_chunk': (True, 2, 48, 1, 0, 110, True, 'eval', D),
    'bidirectional_2hash_padded_odd': (False, 2, 16, 1, 1, 75, True, 'eval', D),
    'causal_2hash_padded_odd_heads_24': (True, 2, 16, 1, 0, 75, True, 'eval', 24),
    'causal_2hash_padded_odd_train': (True, 2, 16, 1, 0, 75, True, 'train', D),
    'causal_1hash': (True, 1, 16, 1, 0, 64, False, 'eval', D),
    'bidirectional_1hash_odd': (False, 1, 16, 1, 0, 41, False, 'eval', D),
}
SLOW = ('causal_2hash_padded_odd_train', 'causal_1hash', 'bidirectional_1hash_odd')


@pytest.mark.parametrize('case', [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c
                                  for c in CASES])
def test_kernel_equals_xla_lsh_values_and_gradients(case):
  causal, n_hashes, chunk_len, before, after, length, masked, mode, d_head = CASES[case]
  q, v, mask = inputs(length, seed=len(case), masked=masked, d=d_head)
  make = lambda impl: LSHKind(n_hashes=n_hashes, n_buckets=4, chunk_len=chunk_len,
                              n_chunks_before=before, n_chunks_after=after, causal=causal,
                              implementation=impl)
  out, (dq, dv) = value_and_grads(make('interpret'), q, v, mask, mode)
  want_out, (want_dq, want_dv) = value_and_grads(make('xla'), q, v, mask, mode)
  assert out.shape == (B, H, length, d_head)
  buckets = make('xla').buckets(q, mask, pair_rngs(mode), mode)   # what both paths sort by
  assert len(np.unique(buckets)) > 2                 # several buckets: chunks mix
  rows = np.ones((B, length), bool) if mask is None else np.asarray(mask)
  np.testing.assert_allclose(np.asarray(out)[rows[:, None].repeat(H, 1)],
                             np.asarray(want_out)[rows[:, None].repeat(H, 1)],
                             atol=2e-5, rtol=2e-5)
  for got, want in ((dq, want_dq), (dv, want_dv)):
    np.testing.assert_allclose(got, want, atol=5e-5, rtol=5e-5)


@pytest.mark.parametrize('causal,n_hashes', [(True, 2), (False, 1)])
def test_one_bucket_through_the_kernel_equals_dense_shared_qk(causal, n_hashes):
  """One bucket, one chunk: every round is the same dense attention (with 2 rounds every
  logit gets -log 2 and the LSE combination must give back dense attention)."""
  q, v, _ = inputs(32, seed=3, masked=False)
  kind = LSHKind(n_hashes=n_hashes, n_buckets=1, chunk_len=32, causal=causal,
                 implementation='interpret')
  out = jax.jit(lambda q, v: run(kind, q, v, None))(q, v)
  for b in range(B):
    for h in range(H):
      want, _ = shared_qk_oracle(q[b, h], v[b, h], causal=causal)
      np.testing.assert_allclose(out[b, h], want, atol=2e-5, rtol=2e-5)


# normalize_keys=False (the queries themselves are the keys), on queries of varied row
# norms: name: (causal, n_hashes, chunk_len, before, after, length, masked, mode).
RAW_CASES = {
    'causal_2hash_padded_odd': (True, 2, 16, 1, 0, 43, True, 'eval'),
    'bidirectional_2hash_padded_odd_3_blocks_per_chunk': (False, 2, 48, 1, 1, 110, True,
                                                          'eval'),
}
RAW_SLOW = ('bidirectional_2hash_padded_odd_3_blocks_per_chunk',)


@pytest.mark.parametrize('case', [pytest.param(c, marks=pytest.mark.slow)
                                  if c in RAW_SLOW else c for c in RAW_CASES])
def test_raw_keys_kernel_equals_xla_lsh_values_and_gradients(case):
  """normalize_keys=False on both paths (the kernel's key scale is then 1); the kernel's
  output is clearly not the unit-key output, so a kernel ignoring the option fails."""
  causal, n_hashes, chunk_len, before, after, length, masked, mode = RAW_CASES[case]
  q, v, mask = inputs(length, seed=9, masked=masked)
  q = jnp.asarray(vary_row_norms(q, seed=10))
  make = lambda impl, normalize=False: LSHKind(
      n_hashes=n_hashes, n_buckets=4, chunk_len=chunk_len, n_chunks_before=before,
      n_chunks_after=after, causal=causal, implementation=impl, normalize_keys=normalize)
  out, (dq, dv) = value_and_grads(make('interpret'), q, v, mask, mode)
  want_out, (want_dq, want_dv) = value_and_grads(make('xla'), q, v, mask, mode)
  assert len(np.unique(make('xla').buckets(q, mask, pair_rngs(mode), mode))) > 2
  rows = (np.ones((B, length), bool) if mask is None else np.asarray(mask))[:, None].repeat(H, 1)
  np.testing.assert_allclose(np.asarray(out)[rows], np.asarray(want_out)[rows],
                             atol=2e-5, rtol=2e-5)
  for got, want in ((dq, want_dq), (dv, want_dv)):
    np.testing.assert_allclose(got, want, atol=5e-5, rtol=5e-5)
  unit = jax.jit(lambda q, v: run(make('xla', True), q, v, mask, mode))(q, v)
  assert np.abs(np.asarray(unit)[rows] - np.asarray(out)[rows]).max() > 0.05


@pytest.mark.parametrize('causal,n_hashes', [(True, 2),
                                             pytest.param(False, 1, marks=pytest.mark.slow)])
def test_raw_keys_one_bucket_through_the_kernel_equals_dense_shared_qk(causal, n_hashes):
  """normalize_keys=False, one bucket, one chunk: the numpy oracle with raw keys."""
  q, v, _ = inputs(32, seed=3, masked=False)
  q = jnp.asarray(vary_row_norms(q, seed=4))
  kind = LSHKind(n_hashes=n_hashes, n_buckets=1, chunk_len=32, causal=causal,
                 implementation='interpret', normalize_keys=False)
  out = jax.jit(lambda q, v: run(kind, q, v, None))(q, v)
  for b in range(B):
    for h in range(H):
      want, _ = shared_qk_oracle(q[b, h], v[b, h], causal=causal, normalize_keys=False)
      np.testing.assert_allclose(out[b, h], want, atol=2e-5, rtol=2e-5)


def test_banded_plan_lists_window_blocks():
  plan = banded_plan(3, 2, 1, 0)          # 3 chunks of 2 blocks, one chunk back
  np.testing.assert_array_equal(plan.fwd.counts, [2, 2, 4, 4, 4, 4])
  np.testing.assert_array_equal(plan.fwd.table.reshape(6, 4)[3], [0, 1, 2, 3])
  np.testing.assert_array_equal(plan.bwd.counts, [4, 4, 4, 4, 2, 2])
  assert len(plan.fwd.extra) == 0 and len(plan.bwd.extra) == 0   # never split


@pytest.mark.skipif(jax.default_backend() == 'gpu', reason='checks the CPU choices')
def test_selection_off_gpu_and_errors():
  q = jnp.ones((1, 2, 64, 16), jnp.bfloat16)
  assert LSHKind(chunk_len=64).pick_implementation(q) == 'xla'
  assert LSHKind(chunk_len=64, implementation='interpret').pick_implementation(q) == 'interpret'
  with pytest.raises(ValueError, match="implementation='pallas' needs a GPU.*'cpu'"):
    LSHKind(implementation='pallas').pick_implementation(q)
  with pytest.raises(ValueError, match="implementation='interpret'.*chunk_len=12"):
    LSHKind(chunk_len=12, implementation='interpret').pick_implementation(q)
  with pytest.raises(ValueError, match="LSHKind: implementation must be one of.*'cudnn'"):
    LSHKind(implementation='cudnn')


def test_selection_on_gpu():
  bf16 = jnp.ones((1, 2, 256, 64), jnp.bfloat16)
  f32 = bf16.astype(jnp.float32)
  narrows = [jnp.ones((1, 2, 256, d), jnp.bfloat16) for d in (16, 48, 96)]
  thin = jnp.ones((1, 2, 256, 8), jnp.bfloat16)
  wide = jnp.ones((1, 2, 256, 192), jnp.bfloat16)
  with abstract_gpu():
    assert LSHKind(chunk_len=256).pick_implementation(bf16) == 'pallas'
    assert LSHKind(chunk_len=256).pick_implementation(f32) == 'xla'
    assert LSHKind(chunk_len=24).pick_implementation(bf16) == 'xla'   # no 16-multiple
    for narrow in narrows:                          # 16..128, zero-padded between widths
      assert LSHKind(chunk_len=256).pick_implementation(narrow) == 'pallas'
    for x in (wide, thin):                                              # XLA beyond 16..128
      assert LSHKind(chunk_len=256).pick_implementation(x) == 'xla'
    with pytest.raises(ValueError, match='16 <= d_head <= 128.*d_head=192'):
      LSHKind(chunk_len=256, implementation='pallas').pick_implementation(wide)
    assert LSHKind(chunk_len=256, implementation='xla').pick_implementation(bf16) == 'xla'
    with pytest.raises(ValueError, match='chunk_len=24, d_head=64'):
      LSHKind(chunk_len=24, implementation='pallas').pick_implementation(bf16)


def test_lsh_kernels_lower_to_triton_without_a_gpu():
  """Lower the 2-round causal path's fwd+bwd for CUDA (the chunk-id loads, the count and
  the self penalty must lower to Triton, which the interpreter does not check)."""
  kind = LSHKind(n_hashes=2, n_buckets=8, chunk_len=128, causal=True, implementation='pallas')
  x = jax.ShapeDtypeStruct((1, 2, 1000, 64), jnp.bfloat16)
  mask = jax.ShapeDtypeStruct((1, 1000), jnp.bool_)
  def loss(q, v, mask):
    return jnp.sum(kind.attend_batched(q, None, v, mask, None, None, 'eval')[0].astype(
        jnp.float32))
  text = lowered_for_cuda(jax.grad(loss, argnums=(0, 1)), x, x, mask)
  assert kernel_names(text) == SPARSE_KERNELS


def shared_keys_case(dtype, seed=5, sequence_major=False, rounds_folded=False,
                     own_chunks=False):
  """Sorted-order inputs of one kernel call as fused.py makes them: 2 rounds folded into
  (B, 2H) heads, 3 chunks of 2 blocks, a shuffled position order, padding keys, both
  rounds' chunk ids, the self penalty. Returns loss(q, v, keys) on the output and the lse
  (combine_rounds needs both); keys: 'scaled' (key_scale=shared_qk_scale(q)), 'explicit'
  (k=shared_qk_keys(q)), 'detached' (those keys without their gradient) or
  'scale_detached' (key_scale without its gradient). own_chunks: round r's ids (heads h * 2
  + r) are the sorted slots' own chunks, as LSH's are, so every pair the band computes is in
  its round's window (what rounds_folded assumes); else random."""
  n_chunks, per_chunk, bs, heads = 3, 2, 16, 2 * H
  length = n_chunks * per_chunk * bs
  rng = np.random.default_rng(seed)
  q, v = (jnp.asarray(random_array((B, heads, length, D), seed + i), dtype) for i in range(2))
  pos = np.stack([np.stack([rng.permutation(length) for _ in range(heads)]) for _ in range(B)])
  k_pos = jnp.asarray(np.where(rng.random(pos.shape) < 0.2, -1, pos))
  ids = [rng.integers(0, n_chunks, pos.shape) for _ in range(2)]
  if own_chunks:
    for r in range(2):
      ids[r][:, r::2] = np.arange(length) // (per_chunk * bs)
  ids = tuple(jnp.asarray(c, jnp.int32) for c in ids)
  w = jnp.asarray(random_array((B, heads, length, D), seed + 50))
  plan = banded_plan(n_chunks, per_chunk, 1, 0)
  def loss(q, v, keys):
    stop = jax.lax.stop_gradient
    k, scale = {'scaled': (None, shared_qk_scale(q)), 'explicit': (shared_qk_keys(q), None),
                'detached': (stop(shared_qk_keys(q)), None),
                'scale_detached': (None, stop(shared_qk_scale(q)))}[keys]
    out, lse = sparse_kernel.sparse_attention(
        q, k, v, jnp.asarray(pos), k_pos, plan, causal=True, interpret=True,
        return_lse=True, self_penalty=SELF_PENALTY, chunk_ids=ids, window=(1, 0),
        key_scale=scale, sequence_major=sequence_major, rounds_folded=rounds_folded)
    return jnp.sum(out.astype(jnp.float32) * w) + jnp.sum(jax.nn.sigmoid(lse) * w[..., 0])
  return loss, q, v


def relative_error(got, want):
  got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
  return np.linalg.norm(got - want) / np.linalg.norm(want)


@pytest.mark.parametrize('dtype,tol,sequence_major', [(jnp.float32, 1e-6, False),
                                                      (jnp.bfloat16, 1e-2, False),
                                                      (jnp.float32, 1e-6, True)])
def test_key_scale_equals_explicit_shared_keys(dtype, tol, sequence_major):
  """Keys given as q and a per-position scale (never made as an array) give the loss and
  the q and v gradients of passing k = shared_qk_keys(q): the gradient reaches q both
  through the keys and through the scale (kernels head- or sequence-major)."""
  loss, q, v = shared_keys_case(dtype, sequence_major=sequence_major)
  grads = {keys: jax.jit(jax.value_and_grad(lambda q, v, keys=keys: loss(q, v, keys),
                                            argnums=(0, 1)))(q, v)
           for keys in ('scaled', 'explicit', 'detached', 'scale_detached')}
  (value, (dq, dv)), (want_value, (want_dq, want_dv)) = grads['scaled'], grads['explicit']
  assert abs(float(value) - float(want_value)) <= tol * abs(float(want_value))
  assert relative_error(dq, want_dq) <= tol and relative_error(dv, want_dv) <= tol
  # The keys' and the scale's shares of dq are large: a path dropping either fails above.
  for dropped in ('detached', 'scale_detached'):
    assert relative_error(grads[dropped][1][0], want_dq) > 10 * tol, dropped


def test_rounds_folded_equals_the_full_count_where_each_round_holds_its_pairs():
  """rounds_folded counts a program's own round without comparing: the same loss and
  gradients as the full count when LSH's layout holds (float32), different when it does
  not (random chunk ids), so the flag is really what the kernels ran."""
  def run(rounds_folded, own_chunks):
    loss, q, v = shared_keys_case(jnp.float32, rounds_folded=rounds_folded,
                                  own_chunks=own_chunks)
    return jax.jit(jax.value_and_grad(lambda q, v: loss(q, v, 'scaled'), (0, 1)))(q, v)
  folded, full = run(True, True), run(False, True)
  assert abs(float(folded[0]) - float(full[0])) <= 1e-6 * abs(float(full[0]))
  for got, want in zip(folded[1], full[1]):
    assert relative_error(got, want) <= 1e-6
  assert abs(float(run(True, False)[0]) - float(run(False, False)[0])) > 1e-3


def test_sparse_attention_keys_argument_errors():
  loss, q, v = shared_keys_case(jnp.float32)
  del loss
  pos = jnp.zeros((1, 1, q.shape[-2]), jnp.int32)
  plan = banded_plan(3, 2, 1, 0)
  scale = shared_qk_scale(q)
  with pytest.raises(ValueError, match=r'exactly one of k.*key_scale.*got k of shape '
                     r'\(2, 4, 96, 16\) and key_scale of shape \(2, 4, 96\)'):
    sparse_kernel.sparse_attention(q, q, v, pos, pos, plan, key_scale=scale)
  with pytest.raises(ValueError, match='exactly one of k.*got k of shape None and key_scale '
                     'of shape None'):
    sparse_kernel.sparse_attention(q, None, v, pos, pos, plan)
  with pytest.raises(ValueError, match=r'key_scale must be \(B, H, L\) = \(2, 4, 96\) for q '
                     r'of shape \(2, 4, 96, 16\); got \(2, 4, 95\)'):
    sparse_kernel.sparse_attention(q, None, v, pos, pos, plan, key_scale=scale[..., :95])
  with pytest.raises(ValueError, match=r'rounds_folded needs >= 2 chunk_ids vectors and heads '
                     r'a multiple of their number; got 3 and q of shape \(2, 4, 96, 16\)'):
    sparse_kernel.sparse_attention(q, None, v, pos, pos, plan, key_scale=scale,
                                   chunk_ids=(pos,) * 3, window=(1, 0), rounds_folded=True)


def test_kernel_path_keeps_no_keys_and_no_sorted_copies_for_the_backward():
  """What jax.vjp of the layer's kernel path keeps for the backward (its residuals): q and v
  as they are, (B, H, Lp, d), and the rounds' outputs, (B, H * R, Lp, d); no keys and no
  sorted copy of q or v (the kernels read rows through the sort order; before, sorted
  copies of q and v, (B, H * R, Lp, d), were kept)."""
  q, v, mask = inputs(75, seed=1, masked=True)
  kind = LSHKind(n_hashes=2, n_buckets=4, chunk_len=16, causal=True,
                 implementation='interpret')
  q, v = q.astype(jnp.bfloat16), v.astype(jnp.bfloat16)
  fn = lambda q, v: run(kind, q, v, mask)
  _, pull = jax.jit(lambda q, v: jax.vjp(fn, q, v))(q, v)
  shapes = [leaf.shape for leaf in jax.tree_util.tree_leaves(pull)]
  padded = 80
  assert shapes.count((B, H, padded, D)) == 2, shapes           # q, v
  assert shapes.count((B, H * 2, padded, D)) == 1, shapes       # the rounds' outputs


def test_kernel_path_makes_no_key_array_and_bf16_gradient_partials():
  """In the whole bf16 forward and backward, every kernel reads the sorted q as its keys
  (no key array is made, not even between kernels), and the backward kernels write their
  gradients in bf16 (LSH's banded plan splits no row, so nothing is summed in float32):
  dq, then dk's share of q (dk * key_scale) and dv; the dk/dv kernel also writes the key
  scale's gradient (dk . q, float32), so no einsum re-reads the sorted q for it."""
  kind = LSHKind(n_hashes=2, n_buckets=4, chunk_len=16, causal=True,
                 implementation='interpret')
  q = jnp.asarray(random_array((B, H, 75, D), 3), jnp.bfloat16)
  loss = lambda q, v: jnp.sum(run(kind, q, v, None).astype(jnp.float32))
  calls = list(pallas_calls(jax.make_jaxpr(jax.grad(loss, (0, 1)))(q, q).jaxpr))
  names = [eqn.params['name'] for eqn in calls]
  assert names == ['plait_sparse_fwd_kernel', 'plait_sparse_dq_kernel',
                   'plait_sparse_dkv_kernel'], names
  for eqn in calls:
    # Inputs: the 4 block tables, then q, k, v, ...
    assert eqn.invars[4] is eqn.invars[5], eqn.params['name']
  grads = [v.aval.dtype for eqn in calls[1:] for v in eqn.outvars]
  assert grads == [jnp.bfloat16] * 3 + [jnp.float32], grads

def test_bf16_kernel_is_close_to_bf16_xla_lsh():
  """bf16 inputs (the GPU case): output, dq and dv within bf16 rounding of the XLA path
  (relative L2 over the non-padding outputs)."""
  q, v, mask = inputs(75, seed=4, masked=True)
  q, v = q.astype(jnp.bfloat16), v.astype(jnp.bfloat16)
  make = lambda impl: LSHKind(n_hashes=2, n_buckets=4, chunk_len=16, causal=True,
                              implementation=impl)
  out, (dq, dv) = value_and_grads(make('interpret'), q, v, mask)
  want_out, (want_dq, want_dv) = value_and_grads(make('xla'), q, v, mask)
  rows = np.asarray(mask)[:, None].repeat(H, 1)
  assert relative_error(np.asarray(out, np.float32)[rows],
                        np.asarray(want_out, np.float32)[rows]) < 1e-2
  assert relative_error(dq, want_dq) < 2e-2 and relative_error(dv, want_dv) < 2e-2
