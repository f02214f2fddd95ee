"""Causal FAVOR+'s Pallas kernels (interpreter on CPU) equal the XLA path and the exact product.

Values and gradients on random inputs, odd lengths and widths, batched and vmapped calls,
and the layer's `implementation=` selection.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.layers.attention import FavorKind
from plait.layers.attention.favor_causal import causal_product
from plait.layers.attention.favor_kernel import causal_product_kernel
from tests.conftest import random_array
from tests.gpu_lowering import outer_equations, pallas_calls
from tests.layers.attention.test_favor_causal import naive_favor


def exact_product(a, b, c):
  """The quadratic definition: tril(a b^T) c."""
  return jnp.tril(jnp.einsum('...sa,...ta->...st', a, b)) @ c


def value_and_grads(fn, a, b, c, seed=0):
  """fn's output and the gradients of <fn(a, b, c), w> for a random w, in one jit."""
  w = jnp.asarray(random_array(jax.eval_shape(fn, a, b, c).shape, seed + 100))
  def run(a, b, c):
    out, pull = jax.vjp(fn, a, b, c)
    return out, pull(w.astype(out.dtype))
  return jax.jit(run)(a, b, c)


def assert_close(got, want, tol=2e-5):
  """Elementwise within tol, relative to each array's largest magnitude (sums cancel)."""
  for x, y in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    y = np.asarray(y, np.float32)
    np.testing.assert_allclose(np.asarray(x, np.float32), y, rtol=tol,
                               atol=tol * max(1.0, float(np.max(np.abs(y)))))


def features(shape, seed):
  """Positive inputs like FAVOR+ features (random_array is never zero)."""
  return np.abs(random_array(shape, seed))


@pytest.mark.parametrize('length,da,dc,chunk', [(37, 20, 5, 16), (64, 130, 65, 32),
                                                (5, 3, 2, 128), (40, 24, 100, 16)])
def test_kernel_equals_xla_path_and_exact_product(length, da, dc, chunk):
  a, b = features((length, da), 1), features((length, da), 2)
  c = random_array((length, dc), 3)
  kernel = value_and_grads(lambda *x: causal_product_kernel(*x, chunk, interpret=True), a, b, c)
  assert kernel[0].dtype == jnp.float32 and kernel[0].shape == (length, dc)
  assert_close(kernel, value_and_grads(lambda *x: causal_product(*x, chunk), a, b, c))
  assert_close(kernel, value_and_grads(exact_product, a, b, c))


@pytest.mark.parametrize('length,segment_chunks', [(200, 2), (129, 1), (64, 4)])
def test_segments_walked_in_parallel_equal_one_walk(length, segment_chunks):
  """Several states programs per pair (segments of 1-4 chunks of 16, the last padded):
  values and all three gradients, whose products walk the chunks both ways."""
  a, b = features((2, length, 24), 11), features((2, length, 24), 12)
  c = random_array((2, length, 65), 13)
  segmented = value_and_grads(
      lambda *x: causal_product_kernel(*x, 16, interpret=True, segment_chunks=segment_chunks),
      a, b, c)
  assert_close(segmented, value_and_grads(exact_product, a, b, c))


def test_short_sequences_walk_shorter_segments_until_the_grid_is_full():
  """Chunks per states program: SEGMENT_CHUNKS (32) while the grid has STATES_PROGRAMS
  (256) programs, halved until it does (or one chunk a segment)."""
  from plait.layers.attention.favor_kernel import segment_length  # pylint: disable=import-outside-toplevel
  per_segment = 8 * 4   # 8 pairs x 4 feature tiles (256 features)
  assert segment_length(512, per_segment) == 32      # 64K tokens in chunks of 128: 512
  assert segment_length(128, per_segment) == 16      # 16K: 8 segments, 256 programs
  assert segment_length(32, per_segment) == 4        # 4K: 8 segments (one of 32 before)
  assert segment_length(3, 1) == 1 and segment_length(1, 10 ** 6) == 1
  assert segment_length(32, 256) == 32               # enough pairs: the longest segments


def test_the_layer_sizes_the_segments_by_all_its_pairs():
  """The layer calls the kernel per (batch, head) pair under vmap; it passes how many pairs
  run together, so the segments are chosen for the whole grid (2 x 3 pairs x 1 tile here)."""
  from plait.layers.attention import favor_kernel  # pylint: disable=import-outside-toplevel
  seen = []
  def spy(n_chunks, programs_per_segment):
    seen.append((n_chunks, programs_per_segment))
    return 1
  q, k, v = (jnp.asarray(random_array((2, 3, 48, 8), s), jnp.bfloat16) for s in (1, 2, 3))
  kind = FavorKind(nb_features=16, causal=True, implementation='interpret', chunk_size=16)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(favor_kernel, 'segment_length', spy)
    kind.attend_batched(q, k, v, None, (), jax.random.split(jax.random.key(0), (2, 3)), 'train')
  assert seen and set(seen) == {(3, 6)}, seen


def test_columns_split_into_power_of_two_pieces():
  from plait.layers.attention.favor_kernel import column_pieces  # pylint: disable=import-outside-toplevel
  assert column_pieces(65) == [(0, 64), (64, 1)]  # FAVOR+'s [v, 1]: 64 + 16 wide, not 128.
  assert column_pieces(64) == [(0, 64)] and column_pieces(17) == [(0, 17)]
  assert column_pieces(100) == [(0, 64), (64, 32), (96, 4)]


def test_column_pieces_share_one_output_kernel_per_product():
  """FAVOR+'s [v, 1] (65 columns: pieces of 64 and 16): the forward and the three gradient
  products are one output kernel each, making every piece (the scores computed once), and
  no (L, da) gradient is summed over pieces outside the kernels. An earlier version ran one
  product per piece: 8 output kernels, and XLA added da's and db's pieces. One states
  kernel per product takes both pieces of [v, 1] (or of its gradient) whole, beside one tile
  of the (L, da) operand: 1 for the forward, 1 for da, and 1 that db and dc share (their
  running sums are each other's transposes). Before, one ran per (b piece, c piece): 2 + 2 +
  2, each reading the (L, da) operand again (4 + 4 when db and dc ran their own)."""
  length, da = 64, 32
  a, b = features((length, da), 1), features((length, da), 2)
  c = random_array((length, 65), 3)
  loss = lambda *x: jnp.sum(causal_product_kernel(*x, 16, interpret=True))
  jaxpr = jax.make_jaxpr(jax.grad(loss, (0, 1, 2)))(a, b, c).jaxpr
  names = [eqn.params['name'] for eqn in pallas_calls(jaxpr)]
  assert names.count('plait_favor_output') == 4
  assert names.count('plait_favor_states') == 3
  adds = [eqn for eqn in outer_equations(jaxpr) if eqn.primitive.name in ('add', 'add_any')
          and eqn.outvars[0].aval.shape[-1:] == (da,) and eqn.outvars[0].aval.ndim >= 2]
  assert not adds


def test_second_order_gradients_through_the_pieced_kernels_equal_the_exact_product():
  """The backward is kernel products too, so gradients of gradients go through them (a and
  c in pieces: 40 -> 32 + 8, 65 -> 64 + 1)."""
  a, b = features((48, 40), 21), features((48, 40), 22)
  c = random_array((48, 65), 23)
  w = random_array((48, 65), 24)
  kernel = lambda *x: causal_product_kernel(*x, 16, interpret=True)
  def second_order(fn):
    inner = lambda a, b, c: jnp.sum(jax.grad(lambda a: jnp.sum(fn(a, b, c) * w))(a) ** 2)
    return jax.grad(inner, argnums=(0, 1, 2))(a, b, c)
  assert_close(jax.jit(lambda: second_order(kernel))(), second_order(exact_product), 1e-4)


def test_bfloat16_operands_keep_float32_sums():
  a, b = features((100, 24), 7), features((100, 24), 8)
  c = random_array((100, 9), 9)
  fn = lambda *x: causal_product_kernel(*(t.astype(jnp.bfloat16) for t in x), 32,
                                        interpret=True)
  out = jax.jit(fn)(a, b, c)
  assert out.dtype == jnp.float32
  want = exact_product(a, b, c)
  np.testing.assert_allclose(out, want, atol=2e-2 * float(jnp.max(jnp.abs(want))))


def test_kernel_takes_leading_dims_and_vmap():
  a, b = features((2, 3, 40, 8), 4), features((2, 3, 40, 8), 5)
  c = random_array((2, 3, 40, 6), 6)
  want = value_and_grads(exact_product, a, b, c)
  batched = lambda *x: causal_product_kernel(*x, 16, interpret=True)
  assert_close(value_and_grads(batched, a, b, c), want)
  assert_close(value_and_grads(jax.vmap(jax.vmap(batched)), a, b, c), want)


def test_kernel_rejects_bad_chunk_and_shapes():
  a = np.ones((8, 4), np.float32)
  with pytest.raises(ValueError, match='causal_product_kernel.*chunk_size 24'):
    causal_product_kernel(a, a, a, 24, interpret=True)
  with pytest.raises(ValueError, match='causal_product_kernel.*shapes'):
    causal_product_kernel(a, a[:5], a, 16, interpret=True)


def test_split_returns_the_pieces_of_the_whole_output():
  """split=True: one output per column piece (65 -> 64 + 1), values and gradients equal to
  the concatenated output's columns."""
  a, b = features((40, 24), 31), features((40, 24), 32)
  c = random_array((40, 65), 33)
  whole = value_and_grads(lambda *x: causal_product_kernel(*x, 16, interpret=True), a, b, c)
  pieces = value_and_grads(
      lambda *x: jnp.concatenate(causal_product_kernel(*x, 16, interpret=True, split=True), -1),
      a, b, c)
  assert [p.shape for p in causal_product_kernel(a, b, c, 16, interpret=True, split=True)] == [
      (40, 64), (40, 1)]
  assert_close(pieces, whole, tol=1e-6)


@pytest.mark.parametrize('d', [64, 40, 8])
def test_ones_column_equals_the_concatenated_ones(d):
  """ones_column=True on v equals the product on [v, 1] (values; gradients of a, b and v)
  whether the ones column is a piece of its own (64: [v] and [1]), shares one with v's last
  columns (40: [v_0..31] and [v_32..39, 1]) or v's only one (8); at 64 no concatenation is
  made at all."""
  a, b = features((40, 24), 41), features((40, 24), 42)
  v = random_array((40, d), 43)
  with_ones = lambda a, b, v: causal_product_kernel(
      a, b, jnp.concatenate([v, jnp.ones((40, 1), v.dtype)], -1), 16, interpret=True)
  own = lambda a, b, v: jnp.concatenate(causal_product_kernel(
      a, b, v, 16, interpret=True, split=True, ones_column=True), -1)
  assert_close(value_and_grads(own, a, b, v), value_and_grads(with_ones, a, b, v), tol=1e-6)
  made = str(jax.make_jaxpr(lambda a, b, v: causal_product_kernel(
      a, b, v, 16, interpret=True, split=True, ones_column=True))(a, b, v))
  assert ('concatenate' in made) == (d != 64)


# d_head 8: [v, 1] is one piece of 9 columns; 32: pieces [v] and [1]; 40: [v_0..31] and
# [v_32..39, 1] (see column_pieces): the three ways the layer reassembles the output.
@pytest.mark.parametrize('masked,d', [(False, 8), (True, 8), (False, 32), (True, 40)])
def test_layer_kernel_path_equals_xla_path_and_naive_reference(masked, d):
  batch, heads, length = 2, 2, 19
  q, k, v = (random_array((batch, heads, length, d), i) * 0.7 for i in range(3))
  mask = (np.random.default_rng(7).random((batch, length)) < 0.8) if masked else None
  kinds = {impl: FavorKind(16, causal=True, redraw=False, chunk_size=16, implementation=impl)
           for impl in ('interpret', 'xla')}
  def attend(impl):
    return lambda q, k, v: kinds[impl].attend_batched(q, k, v, mask, (), None, 'eval')[0]
  projection = kinds['xla'].projection(None, d, 'eval')
  def naive(q, k, v):
    one = lambda q1, k1, v1, m1: naive_favor(q1, k1, v1, m1, kinds['xla'], projection)
    per_head = jax.vmap(one, (0, 0, 0, None))
    return jax.vmap(per_head, (0, 0, 0, None if mask is None else 0))(q, k, v, mask)
  got = value_and_grads(attend('interpret'), q, k, v)
  assert_close(got, value_and_grads(attend('xla'), q, k, v), tol=1e-4)
  assert_close(got, value_and_grads(naive, q, k, v), tol=1e-4)


def test_layer_keeps_the_kernels_pieces_without_concatenating_them():
  """d_head 32: the kernels write [v] and [1] apart; the layer keeps those pieces for the
  backward (recompute_features) and divides one by the other, with no float32 (L, 33)
  concatenation (at 64K tokens on an H100 it was a 0.16 ms fusion, made only to be kept;
  [v, 1] itself is bf16 here)."""
  d, length = 32, 40
  q, k, v = (jnp.asarray(random_array((1, 2, length, d), i), jnp.bfloat16) for i in range(3))
  kind = FavorKind(16, causal=True, redraw=False, chunk_size=16, implementation='interpret')
  loss = lambda q, k, v: jnp.sum(kind.attend_batched(q, k, v, None, (), None, 'eval')[0])
  jaxpr = jax.make_jaxpr(jax.grad(loss, (0, 1, 2)))(q, k, v).jaxpr
  widths = [eqn.outvars[0].aval.shape[-1] for eqn in outer_equations(jaxpr)
            if eqn.primitive.name == 'concatenate' and eqn.outvars[0].aval.dtype == jnp.float32]
  assert d + 1 not in widths


def test_implementation_selection_and_errors():
  kind = FavorKind(8, causal=True)
  assert kind.pick_implementation(jnp.bfloat16) == (
      'pallas' if jax.default_backend() == 'gpu' else 'xla')
  assert kind.pick_implementation(jnp.float32) == 'xla'
  assert FavorKind(8, causal=True, chunk_size=100).pick_implementation(jnp.bfloat16) == 'xla'
  assert FavorKind(8, causal=True, implementation='interpret').pick_implementation(
      jnp.float32) == 'interpret'
  with pytest.raises(ValueError, match='CausalFavor: implementation must be one of'):
    FavorKind(8, causal=True, implementation='triton')
  with pytest.raises(ValueError, match="Favor: implementation='pallas': the bidirectional"):
    FavorKind(8, kernel='relu', causal=False, implementation='pallas')
  if jax.default_backend() != 'gpu':
    with pytest.raises(ValueError, match="CausalFavor: implementation='pallas' needs a GPU"):
      FavorKind(8, causal=True, implementation='pallas').pick_implementation(jnp.bfloat16)
