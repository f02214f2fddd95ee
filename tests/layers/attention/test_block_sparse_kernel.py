"""The fused sparse-attention kernel (Pallas interpreter on CPU) equals the XLA paths.

Values and gradients of q, k, v, on random inputs with padding, odd lengths, empty rows,
split (global) rows, bidirectional and causal.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention import BlockSparseKind, block_sparse, sparse_kernel
from plait.layers.attention.block_plan import block_plan
from plait.layers.attention.dense import masked_attention
from tests.conftest import random_array
from tests.gpu_lowering import (SPARSE_KERNELS, abstract_gpu, kernel_names, lowered_for_cuda,
                                outer_equations, pallas_calls)

B, H = 2, 2


def value_and_grads(fn, q, k, v, seed=0):
  """fn's output and the gradients of <fn(q, k, v), w> for a random w, in one jit."""
  out_shape = jax.eval_shape(fn, q, k, v)
  w = jnp.asarray(random_array(out_shape.shape, seed + 100))
  def run(q, k, v):
    out, pull = jax.vjp(fn, q, k, v)
    return out, pull(w.astype(out.dtype))
  return jax.jit(run)(q, k, v)


def assert_close(got, want, tol=2e-5):
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                               atol=tol, rtol=tol)


def allowed_positions(lists, block_size, k_pos, causal):
  """(B, H, L, L) bool: query i sees key j when j's block is in i's list, j is not padding
  (k_pos -1) and, if causal, j <= i. The exact mask the kernel must reproduce."""
  n = len(lists)
  blocks = np.zeros((n, n), bool)
  for row, keys in enumerate(lists):
    blocks[row, keys] = True
  tile = np.ones((block_size, block_size), bool)
  allowed = np.kron(blocks, tile)[None, None] & (k_pos[:, :, None] >= 0)
  if causal:
    allowed = allowed & np.tri(n * block_size, dtype=bool)
  return allowed


def test_plan_splits_long_lists_and_transposes():
  plan = block_plan([[0, 1], [0, 1, 2], [], [2]], width=2)
  np.testing.assert_array_equal(plan.fwd.owner, [0, 1, 2, 3, 1])  # block b's first part: row b
  np.testing.assert_array_equal(plan.fwd.counts, [2, 2, 0, 1, 1])
  np.testing.assert_array_equal(plan.fwd.table, [0, 1, 0, 1, 0, 0, 2, 0, 2, 0])
  np.testing.assert_array_equal(plan.fwd.extra, [4])
  np.testing.assert_array_equal(plan.fwd.extra_owner, [1])
  # Key block 0 is seen by query blocks 0, 1; block 2 by 1 and 3; block 3 by none.
  np.testing.assert_array_equal(plan.bwd.owner, [0, 1, 2, 3])
  np.testing.assert_array_equal(plan.bwd.table.reshape(4, 2), [[0, 1], [0, 1], [1, 3], [0, 0]])
  np.testing.assert_array_equal(plan.bwd.counts, [2, 2, 2, 0])
  assert plan.computed_blocks == 6
  with pytest.raises(ValueError, match='query block 1 lists key blocks \\[2, 2\\]'):
    block_plan([[0], [2, 2], [1]], width=2)
  with pytest.raises(ValueError, match='bwd_width must be >= 1, got 2 and 0'):
    block_plan([[0]], width=2, bwd_width=0)


def test_backward_rows_have_their_own_width():
  """Key block 0 is seen by 3 query blocks: split in 2 rows at bwd_width 2, one at 3; the
  forward rows keep width 2."""
  lists = [[0, 1], [0, 1, 2], [0]]
  narrow, wide = block_plan(lists, width=2), block_plan(lists, width=2, bwd_width=3)
  np.testing.assert_array_equal(narrow.bwd.extra_owner, [0])
  np.testing.assert_array_equal(wide.bwd.extra_owner, [])
  np.testing.assert_array_equal(wide.bwd.table.reshape(3, 3), [[0, 1, 2], [0, 1, 0], [1, 0, 0]])
  np.testing.assert_array_equal(wide.fwd.table, narrow.fwd.table)
  assert (wide.width, wide.bwd_width, narrow.bwd_width) == (2, 3, 2)


@pytest.mark.parametrize('causal', [False, True])
def test_bigbird_backward_splits_little_beyond_the_global_blocks(causal):
  """At 64K tokens (1,024 blocks of 64, 3 random blocks) the backward rows are twice the
  forward's: bidirectional, only the 2 global key blocks (seen by every query block) are
  split, not the 355 of the forward width; causal 48 (of 141 at the forward width),
  early blocks being drawn by many later ones. Fewer split blocks, fewer parts to combine
  after the kernel (benchmarks/RESULTS.md section 37)."""
  plan = block_sparse.kernel_plan(1024, 3, 0, causal)
  split = np.unique(plan.bwd.extra_owner)
  assert plan.bwd_width == 2 * plan.width
  if causal:
    assert len(split) == 48
  else:
    np.testing.assert_array_equal(split, [0, 1023])


@pytest.mark.parametrize('causal', [False, True])
@pytest.mark.parametrize('bwd_width,sequence_major', [(None, False), (3, False), (None, True)])
def test_kernel_equals_masked_attention_on_random_lists(causal, bwd_width, sequence_major):
  """Random lists (some empty, some longer than a work row), padded keys, causal or not;
  backward rows as wide as the forward's or wider; kernels head- or sequence-major."""
  rng = np.random.default_rng(int(causal))
  n, bs, d = 5, 8, 8
  lists = [sorted(rng.choice(n, size, replace=False).tolist()) for size in (5, 0, 2, 4)]
  lists.append([4])  # In batch 1 all its keys are padding: a row that sees nothing.
  plan = block_plan(lists, width=2, bwd_width=bwd_width)
  length = n * bs
  q, k, v = (jnp.asarray(random_array((B, H, length, d), i)) for i in range(3))
  k_pos = np.tile(np.arange(length), (B, 1, 1))
  k_pos[0, 0, 3:11] = -1   # padding inside a block and across a block boundary
  k_pos[1, 0, 30:] = -1
  q_pos = np.arange(length)[None, None]
  allowed = allowed_positions(lists, bs, k_pos, causal)
  kernel = lambda q, k, v: sparse_kernel.sparse_attention(
      q, k, v, jnp.asarray(q_pos), jnp.asarray(k_pos), plan, causal, interpret=True,
      sequence_major=sequence_major)
  oracle = lambda q, k, v: masked_attention(q, k, v, jnp.asarray(allowed))
  assert_close(value_and_grads(kernel, q, k, v), value_and_grads(oracle, q, k, v))


@pytest.mark.parametrize('causal,sequence_major,d,shared', [
    (False, False, 8, False), (True, False, 8, False), (True, True, 8, False),
    (False, False, 5, False), (True, True, 24, False), (True, False, 100, True)])
def test_log_sum_exp_output_and_its_gradient(causal, sequence_major, d, shared):
  """lse equals logsumexp of the visible logits, and gradients flow through it. Heads of
  widths other than 16, 32, 64, 128 run on the next kernel width, zero-padded, scaled by
  their true width (a padded width's 1/sqrt(d) would differ); with `shared`, keys are
  q * key_scale and the gradients go to q and key_scale."""
  n, bs = 4, 8
  lists = [[0, 2], [0, 1], [0, 1, 2, 3], [1, 3]]  # each block sees itself (no empty rows)
  plan = block_plan(lists, width=3)
  length = n * bs
  q, k, v = (jnp.asarray(random_array((B, H, length, d), 10 + i)) for i in range(3))
  key_scale = jnp.asarray(1.0 + 0.5 * np.abs(random_array((B, H, length), 13)))
  k_pos = np.tile(np.arange(length), (B, 1, 1))
  k_pos[1, 0, 13:15] = -1
  q_pos = np.arange(length)[None, None]
  allowed = allowed_positions(lists, bs, k_pos, causal)
  w = jnp.asarray(random_array((B, H, length), 50))
  def combine(out, lse):  # a loss that needs both, as LSH's round combination does
    assert out.shape == (B, H, length, d)
    return jnp.sum(out * jax.nn.sigmoid(lse)[..., None]) + jnp.sum(w * lse)
  def kernel(q, k, v, key_scale):
    return combine(*sparse_kernel.sparse_attention(
        q, None if shared else k, v, jnp.asarray(q_pos), jnp.asarray(k_pos), plan, causal,
        interpret=True, return_lse=True, sequence_major=sequence_major,
        key_scale=key_scale if shared else None))
  def oracle(q, k, v, key_scale):
    k = q * key_scale[..., None] if shared else k
    logits = jnp.einsum('bhqd,bhkd->bhqk', q, k) / np.sqrt(d)
    lse = jax.nn.logsumexp(jnp.where(allowed, logits, -jnp.inf), axis=-1)
    return combine(masked_attention(q, k, v, jnp.asarray(allowed)), lse)
  args, argnums = (q, k, v, key_scale), (0, 1, 2, 3)
  got = jax.jit(jax.value_and_grad(kernel, argnums=argnums))(*args)
  # key_scale's gradient sums d products of size ~25: float32 order differs by ~1e-4 (as
  # unpadded at d 128); the wrong scale (padded width) would be off by ~10 %.
  assert_close(got, jax.value_and_grad(oracle, argnums=argnums)(*args),
               tol=3e-4 if shared else 5e-5)


def test_heads_wider_than_128_are_refused():
  plan = block_plan([[0], [0, 1]], width=2)
  q = jnp.zeros((1, 1, 32, 160))
  pos = jnp.arange(32)[None, None]
  with pytest.raises(ValueError, match=r'heads up to 128 wide.*\(1, 1, 32, 160\).*d_head=160'):
    sparse_kernel.sparse_attention(q, q, q, pos, pos, plan, interpret=True)


def dots_in(jaxpr):
  """The dot_general equations of a jaxpr and of the jaxprs nested in it (loop bodies)."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'dot_general':
      yield eqn
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      yield from dots_in(sub)


@pytest.mark.parametrize('key_scale', [False, True])
def test_backward_kernels_contract_no_tile_over_its_rows(key_scale):
  """The dk/dv kernel recomputes its tiles transposed (keys along rows), so none of the
  backward kernels' dots takes a transposed left operand (on the GPU a register tile's
  layout change per dot): 4 dots per step for dk/dv, 3 for dq."""
  plan = block_plan([[0, 1], [0, 1]], width=2)
  q = jnp.asarray(random_array((1, 1, 32, 16), 3))
  pos = jnp.arange(32, dtype=jnp.int32)[None, None]
  scale = jnp.ones((1, 1, 32), jnp.float32) if key_scale else None
  def loss(q, v):
    out = sparse_kernel.sparse_attention(q, None if key_scale else q, v, pos, pos, plan,
                                         causal=True, interpret=True, key_scale=scale)
    return jnp.sum(out)
  jaxpr = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(q, q).jaxpr
  lhs_contracting = {str(e.params['name']): [d.params['dimension_numbers'][0][0][0]
                                             for d in dots_in(e.params['jaxpr'])]
                     for e in pallas_calls(jaxpr)}
  assert lhs_contracting == {'plait_sparse_fwd_kernel': [1, 1],
                             'plait_sparse_dq_kernel': [1, 1, 1],
                             'plait_sparse_dkv_kernel': [1, 1, 1, 1]}, lhs_contracting


def test_only_split_blocks_are_written_as_float32_parts():
  """bf16: each kernel writes unsplit blocks once, in bf16, straight into the (B, H, L, ...)
  result; only the work rows of split blocks go to float32 parts (two rows here: query
  block 0 forward, key block 0 backward), so no full-size float32 array is made."""
  n, bs, d = 4, 16, 16
  plan = block_plan([[0, 1, 2, 3], [0, 1], [0, 2], [3]], width=2)
  length = n * bs
  q, k, v = (jnp.asarray(random_array((B, H, length, d), 20 + i), jnp.bfloat16)
             for i in range(3))
  pos = jnp.arange(length)[None, None]
  loss = lambda q, k, v: jnp.sum(sparse_kernel.sparse_attention(
      q, k, v, pos, pos, plan, interpret=True).astype(jnp.float32))
  calls = list(pallas_calls(jax.make_jaxpr(jax.grad(loss, (0, 1, 2)))(q, k, v).jaxpr))
  written = {eqn.params['name']: [(v.aval.dtype, v.aval.shape) for v in eqn.outvars]
             for eqn in calls}
  full, rows, parts = (B, H, length, d), (B, H, length), (B, H, 2 * bs, d)
  bf16, f32 = jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32)
  assert written == {
      'plait_sparse_fwd_kernel': [(bf16, full), (f32, rows), (f32, parts), (f32, (B, H, 2 * bs))],
      'plait_sparse_dq_kernel': [(bf16, full), (f32, parts)],
      'plait_sparse_dkv_kernel': [(bf16, full), (bf16, full), (f32, parts), (f32, parts)]}


def test_combining_split_blocks_costs_the_same_ops_however_many_are_split():
  """The XLA ops around the kernels do not grow with the number of split blocks (an earlier
  version set each run of split blocks with its own slice update: 463 kernels per step on
  BigBird's 64K backward, launch-bound on an H100). Same pattern family at 16 and 48
  blocks, cut at width 8 both ways: 6 vs 19 key blocks split backward."""
  def n_ops(n_blocks):
    plan = block_plan(block_sparse.kernel_lists(n_blocks, 3, 0, False), width=8)
    shape = (1, 1, n_blocks * 16, 16)
    q = jnp.zeros(shape, jnp.bfloat16)
    pos = jnp.arange(shape[2])[None, None]
    loss = lambda q, k, v: jnp.sum(sparse_kernel.sparse_attention(
        q, k, v, pos, pos, plan, interpret=True).astype(jnp.float32))
    jaxpr = jax.make_jaxpr(jax.grad(loss, (0, 1, 2)))(q, q, q).jaxpr
    return len(list(outer_equations(jaxpr))), len(np.unique(plan.bwd.extra_owner))
  (small, split_small), (large, split_large) = n_ops(16), n_ops(48)
  assert split_large > split_small > 1
  assert small == large, (small, large)


def layer_case(causal, length, bs, r, seed, masked, dtype=np.float32, d=8):
  q, k, v = (jnp.asarray(random_array((B, H, length, d), seed + i, dtype)) for i in range(3))
  mask = None
  if masked:
    mask = jnp.asarray(np.random.default_rng(seed).random((B, length)) < 0.7)
  def run(implementation):
    kind = BlockSparseKind(bs, r, seed=seed, causal=causal, implementation=implementation)
    return lambda q, k, v: kind.attend_batched(q, k, v, mask, (), None, 'eval')[0]
  return run, (q, k, v)


# (length, block_size, num_rand_blocks, seed, padding mask): an odd length (a partial last
# block) with padding, and a block multiple. Both split rows: the global rows (8 or 12 key
# blocks > width 6 or 7) forward, key block 0 (seen by every row) backward.
LAYER_CASES = [(61, 8, 1, 3, True), pytest.param(96, 8, 2, 5, False, marks=pytest.mark.slow)]


@pytest.mark.parametrize('causal', [False, True])
@pytest.mark.parametrize('length,bs,r,seed,masked', LAYER_CASES)
def test_layer_kernel_equals_xla_values_and_gradients(causal, length, bs, r, seed, masked):
  run, args = layer_case(causal, length, bs, r, seed, masked)
  assert_close(value_and_grads(run('interpret'), *args), value_and_grads(run('xla'), *args))


@pytest.mark.slow
@pytest.mark.parametrize('causal', [False, True])
def test_bf16_kernel_is_close_to_float32_xla_on_a_longer_sequence(causal):
  run, (q, k, v) = layer_case(causal, 1000, 32, 3, 11, True, d=32)
  got = value_and_grads(run('interpret'), *(t.astype(jnp.bfloat16) for t in (q, k, v)))
  want = value_and_grads(run('xla'), q, k, v)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    a = np.asarray(a, np.float32)
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 2e-2


@pytest.mark.skipif(jax.default_backend() == 'gpu', reason='checks the CPU choices')
def test_selection_auto_uses_xla_off_gpu_and_explicit_kernels_raise():
  q = jnp.ones((1, 2, 64, 16), jnp.bfloat16)
  assert BlockSparseKind(16).pick_implementation(q) == 'xla'          # CPU: auto is XLA
  assert BlockSparseKind(16, implementation='interpret').pick_implementation(q) == 'interpret'
  with pytest.raises(ValueError, match="implementation='pallas' needs a GPU.*'cpu'"):
    BlockSparseKind(16, implementation='pallas').pick_implementation(q)
  with pytest.raises(ValueError, match="implementation must be one of.*'cudnn'"):
    BlockSparseKind(16, implementation='cudnn')


def test_selection_on_gpu():
  bf16 = jnp.ones((1, 2, 64, 64), jnp.bfloat16)
  f32 = bf16.astype(jnp.float32)
  narrows = [jnp.ones((1, 2, 64, d), jnp.bfloat16) for d in (16, 48, 80, 96)]
  thin = jnp.ones((1, 2, 64, 8), jnp.bfloat16)
  wide = jnp.ones((1, 2, 64, 160), jnp.bfloat16)
  with abstract_gpu():
    assert BlockSparseKind(64).pick_implementation(bf16) == 'pallas'
    assert BlockSparseKind(64).pick_implementation(f32) == 'xla'
    assert BlockSparseKind(48).pick_implementation(bf16) == 'xla'     # block not a power of 2
    for narrow in narrows:                          # 16..128, zero-padded between widths
      assert BlockSparseKind(64).pick_implementation(narrow) == 'pallas'
    for x in (wide, thin):                                             # XLA beyond 16..128
      assert BlockSparseKind(64).pick_implementation(x) == 'xla'
    with pytest.raises(ValueError, match='16 <= d_head <= 128.*d_head=160'):
      BlockSparseKind(64, implementation='pallas').pick_implementation(wide)
    with pytest.raises(ValueError, match='16 <= d_head <= 128.*d_head=8,'):
      BlockSparseKind(64, implementation='pallas').pick_implementation(thin)
    assert BlockSparseKind(64, implementation='xla').pick_implementation(bf16) == 'xla'
    assert BlockSparseKind(64, implementation='pallas').pick_implementation(f32) == 'pallas'
    with pytest.raises(ValueError, match='block_size=48, d_head=64'):
      BlockSparseKind(48, implementation='pallas').pick_implementation(bf16)


@pytest.mark.parametrize('causal,d_head', [(False, 64), (True, 64), (True, 48)])
def test_kernels_lower_to_triton_without_a_gpu(causal, d_head):
  """CI has no GPU: lower the layer's fwd+bwd for CUDA (catches Triton-lowering gaps that
  the interpreter accepts); all three kernels must appear (d_head 48: zero-padded to 64)."""
  kind = BlockSparseKind(64, 3, causal=causal, implementation='pallas')
  x = jax.ShapeDtypeStruct((1, 2, 1000, d_head), jnp.bfloat16)
  mask = jax.ShapeDtypeStruct((1, 1000), jnp.bool_)
  def loss(q, k, v, mask):
    out = kind.attend_batched(q, k, v, mask, (), None, 'eval')[0]
    return jnp.sum(out.astype(jnp.float32))
  text = lowered_for_cuda(jax.grad(loss, argnums=(0, 1, 2)), x, x, x, mask)
  assert kernel_names(text) == SPARSE_KERNELS
