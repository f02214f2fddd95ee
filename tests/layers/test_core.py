"""Basic layers against numpy references; shape inference; predict-mode positions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import plait.layers as tl
from plait.layers import base
from plait.layers import positional
from plait.shapes import ShapeDtype, signature
from tests.conftest import random_array


def run(layer, x, rng=jax.random.key(0)):
  w, s = layer.init(signature(x), rng=rng)
  return layer.pure_fn(x, w, s, rng)[0], w


def test_dense_and_embedding_match_numpy():
  x = random_array((3, 5))
  y, (k, b) = run(tl.Dense(7), x)
  np.testing.assert_allclose(y, x @ k + b, rtol=1e-5, atol=1e-6)
  ids = np.array([[1, 4, 0], [3, 3, 2]], np.int32)
  y, (table,) = run(tl.Embedding(5, 6), ids)
  np.testing.assert_array_equal(y, np.asarray(table)[ids])


def test_dropout_train_eval_and_rng():
  x = random_array((64, 64)) + 3.0
  y, _ = run(tl.Dropout(0.25), x)
  dropped = np.asarray(y) == 0
  assert 0.2 < dropped.mean() < 0.3
  np.testing.assert_allclose(np.asarray(y)[~dropped], x[~dropped] / 0.75, rtol=1e-6)
  np.testing.assert_array_equal(run(tl.Dropout(0.25, mode='eval'), x)[0], x)
  layer = tl.Dropout(0.25)
  w, s = layer.init(signature(x))
  with pytest.raises(tl.LayerError, match='rng'):
    layer.pure_fn(x, w, s, rng=None)
  shared, _ = run(tl.Dropout(0.5, shared_axes=[0]), x)
  np.testing.assert_array_equal(np.asarray(shared)[0] == 0, np.asarray(shared)[5] == 0)


def test_norms_match_numpy():
  x = random_array((4, 8)) * 3 + 1
  y, (scale, bias) = run(tl.LayerNorm(), x)
  want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(y, want * scale + bias, rtol=1e-4, atol=1e-5)
  y, (scale,) = run(tl.RMSNorm(), x)
  want = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(y, want * scale, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('layer, ref', [
    (tl.Relu(), lambda x: np.maximum(x, 0)),
    (tl.Tanh(), np.tanh),
    (tl.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (tl.Gelu(), lambda x: np.asarray(jax.nn.gelu(x, approximate=False))),
    (tl.FastGelu(), lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    (tl.Softmax(), lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    (tl.LogSoftmax(), lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))),
    (tl.Flatten(), lambda x: x.reshape(x.shape[0], -1)),
], ids=lambda v: getattr(v, 'name', ''))
def test_activations(layer, ref):
  x = random_array((2, 3, 4))
  np.testing.assert_allclose(run(layer, x)[0], ref(x), rtol=1e-5, atol=1e-6)


def test_shift_right():
  ids = np.array([[5, 6, 7], [1, 2, 3]], np.int32)
  np.testing.assert_array_equal(run(tl.ShiftRight(), ids)[0], [[0, 5, 6], [0, 1, 2]])
  np.testing.assert_array_equal(run(tl.ShiftRight(mode='predict'), ids)[0], ids)


@pytest.mark.parametrize('make', [
    lambda mode: tl.PositionalEncoding(max_len=16, mode=mode),
    lambda mode: tl.PositionalEncoding(max_len=16, kind='learned', mode=mode),
    lambda mode: tl.PositionalEncoding(max_len=16, kind='octave', mode=mode),
    lambda mode: tl.AxialPositionalEncoding(shape=(4, 2, 2), d_embs=(2, 2, 4), mode=mode),
])
def test_positional_predict_mode_matches_full_sequence(make):
  x = random_array((2, 11, 8))
  full = make('eval')
  w, s = full.init(signature(x))
  want = full.pure_fn(x, w, s)[0]
  inc = make('predict')
  _, s = inc.init(signature(x[:, :1]))
  outs = []
  y, s = inc.pure_fn(x[:, :5], w, s)        # a prompt in one call ...
  outs.append(y)
  for t in range(5, 11):                     # ... then one position at a time
    y, s = inc.pure_fn(x[:, t:t + 1], w, s)
    outs.append(y)
  np.testing.assert_allclose(np.concatenate(outs, 1), want, rtol=1e-6)
  assert int(s) == 11


@pytest.mark.parametrize('make', [
    lambda mode: tl.PositionalEncoding(max_len=4, mode=mode),
    lambda mode: tl.PositionalEncoding(max_len=4, kind='learned', mode=mode),
    lambda mode: tl.AxialPositionalEncoding(shape=(2, 2), d_embs=(4, 4), mode=mode),
])
def test_positions_past_max_len_are_an_error_in_predict_mode(make):
  """Positions 4 and 5 of a max_len-4 table: eager raises, jit gives NaN rows (never row 3)."""
  layer = make('predict')
  x = random_array((2, 2, 8))
  weights, state = layer.init(signature(x))
  _, state = layer.pure_fn(x, weights, state)           # positions 0, 1
  _, full = layer.pure_fn(x, weights, state)            # 2, 3: the table's end, fine
  with pytest.raises(base.LayerError, match=r'positions 4\.\.5 but max_len is 4'):
    layer.pure_fn(x, weights, full)
  step = jax.jit(layer.pure_fn)
  y, _ = step(x, weights, state)
  assert np.isfinite(np.asarray(y)).all()
  y, s = step(x, weights, full)
  assert np.isnan(np.asarray(y)).all() and int(s) == 6
  half = jnp.asarray(3, jnp.int32)                        # positions 3 (inside) and 4 (past)
  y, _ = step(x, weights, half)
  assert np.isfinite(np.asarray(y[:, 0])).all() and np.isnan(np.asarray(y[:, 1])).all()
  with pytest.raises(base.LayerError, match='input length 5 > max_len 4'):
    layer.pure_fn(random_array((2, 5, 8)), weights, state)


@pytest.mark.parametrize('max_len, d', [(1024, 32), (1000, 7), (16, 64)])
def test_octave_positions_have_every_power_of_two_period(max_len, d):
  """Column pair k (sin, cos) repeats every 2**(k+1) positions, exactly and no sooner; the
  octaves reach at least 2 * max_len, then repeat from the shortest."""
  table = positional.octave_sinusoids(max_len, d)
  assert table.shape == (max_len, d) and table.dtype == np.float32
  octaves = int(np.ceil(np.log2(max_len))) + 1
  assert 2 ** octaves >= 2 * max_len
  for column in range(d):
    period = 2 ** (1 + (column // 2) % octaves)
    values = table[:, column]
    if period < max_len:
      np.testing.assert_allclose(values[period:], values[:-period], atol=1e-4)
    fn = np.sin if column % 2 == 0 else np.cos
    np.testing.assert_allclose(values, fn(2 * np.pi * np.arange(max_len) / period), atol=1e-6)


def test_an_unknown_positional_kind_names_the_kinds():
  with pytest.raises(ValueError, match="'sinusoidal', 'octave' or 'learned', got 'axial'"):
    tl.PositionalEncoding(kind='axial')


def test_axial_positions_are_factorized():
  layer = tl.AxialPositionalEncoding(shape=(3, 4), d_embs=(2, 3))
  x = random_array((1, 12, 5))
  y, weights = run(layer, x)
  t0, t1 = weights.tables
  pos = np.asarray(y - x).reshape(3, 4, 5)
  np.testing.assert_allclose(pos[:, :, :2], np.broadcast_to(np.asarray(t0)[:, None], (3, 4, 2)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(pos[:, :, 2:], np.broadcast_to(np.asarray(t1)[None], (3, 4, 3)), rtol=1e-5, atol=1e-6)
  assert tl.count_params(layer.init(signature(x))[0]) == 3 * 2 + 4 * 3


def test_leaf_layers_name_their_weights_in_the_old_tuple_order():
  sig = signature(random_array((2, 6, 4)))
  def fields(layer):
    weights = layer.init(sig)[0]
    return type(weights).__name__, {k: np.shape(v) for k, v in weights._asdict().items()}
  assert fields(tl.Dense(3)) == ('DenseWeights', {'kernel': (4, 3), 'bias': (3,)})
  assert tl.Dense(3, use_bias=False).init(sig)[0].bias == ()   # no leaf
  assert fields(tl.LayerNorm()) == ('LayerNormWeights', {'scale': (4,), 'bias': (4,)})
  assert fields(tl.RMSNorm()) == ('RMSNormWeights', {'scale': (4,)})
  assert fields(tl.PositionalEncoding(max_len=8, kind='learned')) == (
      'PositionalEncodingWeights', {'table': (8, 4)})
  embedding = tl.Embedding(10, 4).init(signature(np.zeros((2, 6), np.int32)))[0]
  assert type(embedding).__name__ == 'EmbeddingWeights' and embedding.embedding.shape == (10, 4)
  # Field order is the former tuple order: same leaves, same values for the same rng.
  dense = tl.Dense(3).init(sig, rng=jax.random.key(3))[0]
  assert [np.shape(x) for x in jax.tree_util.tree_leaves(dense)] == [(4, 3), (3,)]


def test_losses_and_metrics_ignore_padding():
  logits = random_array((2, 5, 7))
  targets = np.random.default_rng(1).integers(0, 7, (2, 5)).astype(np.int32)
  weights = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], np.float32)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
  want = (nll * weights).sum() / weights.sum()
  got, _ = run(tl.CrossEntropyLoss(), (logits, targets, weights))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  got, _ = run(tl.WeightedCategoryCrossEntropy(), (logits, targets, weights))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  acc = ((logits.argmax(-1) == targets) * weights).sum() / weights.sum()
  np.testing.assert_allclose(run(tl.Accuracy(), (logits, targets, weights))[0], acc, rtol=1e-6)
  garbage = logits.copy()
  garbage[weights == 0] = 1e3 * random_array(garbage[weights == 0].shape, 5)
  np.testing.assert_allclose(run(tl.CrossEntropyLoss(), (garbage, targets, weights))[0], want,
                             rtol=1e-5)


SHAPE_LAYERS = {
    'dense': lambda: tl.Dense(3),
    'layer_norm': tl.LayerNorm,
    'rms_norm': tl.RMSNorm,
    'relu': tl.Relu,
    'gelu': tl.Gelu,
    'log_softmax': tl.LogSoftmax,
    'flatten': tl.Flatten,
    'dropout': lambda: tl.Dropout(0.1),
    'mlp': lambda: tl.Serial(tl.Dense(5), tl.Relu(), tl.Dense(2)),
    'residual': lambda: tl.Residual(tl.Dense(4), tl.Tanh()),
    'branch': lambda: tl.Branch(tl.Dense(2), tl.Mean()),
}


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(SHAPE_LAYERS)),
       shape=st.lists(st.integers(1, 5), min_size=2, max_size=3),
       dtype=st.sampled_from([np.float32, jnp.bfloat16]))
def test_output_signature_matches_actual_outputs(name, shape, dtype):
  layer = SHAPE_LAYERS[name]()
  shape = shape[:-1] + [4]   # Residual(Dense(4)) needs 4 features
  x = random_array(shape).astype(dtype)
  predicted = layer.output_signature(ShapeDtype(x.shape, x.dtype))
  y, _ = run(layer, x)
  got = signature(y)
  assert got == predicted, (name, got, predicted)


def test_embedding_out_of_range_ids_raise_eagerly_and_are_nan_under_jit():
  layer = tl.Embedding(10, 4)
  w, s = layer.init(tl.ShapeDtype((3,), jnp.int32))
  for bad in ([1, -1, 3], [1, 10, 3]):   # -1 used to return row 9; 10 a NaN row
    with pytest.raises(tl.LayerError, match=r'token ids must be in \[0, 9\]'):
      layer.pure_fn(jnp.array(bad), w, s)
  rows = np.asarray(jax.jit(layer.pure_fn)(jnp.array([2, -1, 12]), w, s)[0])
  np.testing.assert_array_equal(rows[0], np.asarray(w.embedding[2]))
  assert np.isnan(rows[1:]).all()
  # numpy ids closed over by a jit are known: checked, not traced (this used to fail with
  # a TracerBoolConversionError for valid ids too).
  rows = jax.jit(lambda w: layer.pure_fn(np.array([2, 0, 9]), w, s)[0])(w)
  np.testing.assert_array_equal(rows, np.asarray(w.embedding)[[2, 0, 9]])
  with pytest.raises(tl.LayerError, match=r'token ids must be in \[0, 9\], got ids in '
                     r'\[1, 10\]'):
    jax.jit(lambda w: layer.pure_fn(np.array([1, 10]), w, s)[0])(w)


def test_cross_entropy_of_a_target_outside_the_classes_is_nan_not_another_class():
  loss = tl.CrossEntropyLoss()
  logits, weights = jnp.zeros((1, 2, 5)), jnp.ones((1, 2))
  value = lambda targets: float(loss.pure_fn((logits, jnp.array([targets]), weights), (), ())[0])
  assert value([0, 4]) == pytest.approx(np.log(5.0))
  assert np.isnan(value([0, -1])) and np.isnan(value([0, 5]))   # -1 used to be finite


@pytest.mark.parametrize('make', [lambda: tl.Dense(3), tl.LayerNorm, tl.RMSNorm])
@pytest.mark.parametrize('dtype', [jnp.int32, jnp.bool_])
def test_dense_and_norms_refuse_non_float_inputs_naming_the_dtype(make, dtype):
  # They used to compute in the input's dtype: weights cast to int (all 0) or bool out.
  with pytest.raises(tl.LayerError, match=f'expects floating inputs, got {jnp.dtype(dtype)}'):
    make().init(tl.ShapeDtype((2, 4), dtype))


def test_embedding_gradient_equals_take_gradient_in_float32():
  table = jnp.asarray(random_array((7, 5), 1))
  ids = jnp.array([[1, 1, 6, 0], [3, 1, 1, 2]])
  w = jnp.asarray(random_array((2, 4, 5), 2))
  def loss(rows_of):
    return lambda t: jnp.sum(rows_of(t, ids) * w)
  got = jax.grad(loss(tl.core.embedding_rows))(table)
  want = jax.grad(loss(lambda t, i: jnp.take(t, i, axis=0)))(table)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  # vmapped (per-example gradients): the sum over examples is the batch's gradient
  per_example = jax.vmap(jax.grad(lambda t, i, w: jnp.sum(tl.core.embedding_rows(t, i) * w)),
                         in_axes=(None, 0, 0))(table, ids, w)
  np.testing.assert_allclose(per_example.sum(0), want, rtol=1e-5, atol=1e-5)


def test_embedding_gradient_sums_repeated_ids_in_float32_under_bf16():
  """Mixed precision: 8,192 tokens of one id. jnp.take's gradient rounded the running sum to
  bf16 at every addition (row 3 came out 2.98 where the sum is 7.32); the layer's gradient
  sums in float32 and rounds once."""
  layer = tl.Embedding(6, 4)
  w, s = layer.init(tl.ShapeDtype((8192,), jnp.int32))
  w = jax.tree_util.tree_map(lambda a: a.astype(jnp.bfloat16), w)
  ids = jnp.full((8192,), 3)
  g = jnp.asarray(random_array((8192, 4), 3)).astype(jnp.bfloat16)
  grad = jax.grad(lambda w: jnp.sum(layer.pure_fn(ids, w, s)[0].astype(jnp.float32) * g))(w)
  assert grad.embedding.dtype == jnp.bfloat16
  want = np.asarray(g, np.float64).sum(0)
  np.testing.assert_allclose(np.asarray(grad.embedding[3], np.float64), want,
                             rtol=2 ** -7, atol=2 ** -7 * np.abs(want).max())
  assert not np.asarray(grad.embedding, np.float32)[[0, 1, 2, 4, 5]].any()
