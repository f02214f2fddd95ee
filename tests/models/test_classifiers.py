"""The encoder classifiers of every attention kind (Long Range Arena's models): shapes, CLS and
mean pooling, padding masks (and pad_id=None), the two-tower pair model, gradients."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait import layers as tl
from plait import models
from plait.layers.metrics import cross_entropy
from plait.models import classifier
from tests.models import helpers

TINY = dict(vocab_size=helpers.VOCAB, n_classes=3, d_model=16, d_ff=32, n_layers=2, n_heads=2,
            max_len=64, dropout=0.1)
# name -> (constructor, its attention's settings); all have blocks/chunks of 4 positions.
KINDS = {
    'TransformerEncoder': (models.TransformerEncoder, {}),
    'ReformerEncoder': (models.ReformerEncoder, dict(n_hashes=2, n_buckets=4, chunk_len=4)),
    'PerformerEncoder': (models.PerformerEncoder, dict(nb_features=8)),
    'BigBirdEncoder': (models.BigBirdEncoder, dict(block_size=4, num_rand_blocks=1)),
    'LocalEncoder': (models.LocalEncoder, dict(chunk_len=4)),
}


def build(name, mode='eval', **kwargs):
  constructor, settings = KINDS[name]
  return constructor(**{**TINY, **settings, **kwargs}, mode=mode)


def runner(model, length, batch=2, seed=0):
  """(jitted tokens -> logits in eval mode, weights): random weights, zero state."""
  sig = helpers.token_signature(batch, length)
  weights = helpers.random_weights(model, sig, seed=seed)
  state = helpers.initial_state(model, sig)
  return jax.jit(lambda t: model.pure_fn(t, weights, state, None)[0]), weights


@pytest.mark.parametrize('name', sorted(KINDS))
@pytest.mark.parametrize('pooling', ['mean', 'cls'])
@pytest.mark.parametrize('pad_id', [0, None])
def test_every_kind_pooling_and_padding_choice_gives_class_logits(name, pooling, pad_id):
  model = build(name, pooling=pooling, pad_id=pad_id, head_d_ff=8)
  out = model.output_signature(helpers.token_signature(3, 30))
  assert (out.shape, out.dtype) == ((3, 3), jnp.float32)
  assert model.name == name


@pytest.mark.parametrize('name', sorted(KINDS))
def test_without_n_classes_the_encoder_returns_pooled_features(name):
  out = build(name, n_classes=None).output_signature(helpers.token_signature(3, 30))
  assert out.shape == (3, TINY['d_model'])


@pytest.mark.parametrize('name, pooling', [(name, 'mean') for name in sorted(KINDS)] + [
    ('TransformerEncoder', 'cls'), ('BigBirdEncoder', 'cls')])
def test_adding_padding_tokens_changes_no_logit(name, pooling):
  """Masked out of attention and pooling, padding is invisible: 24 tokens padded to 26 or 27
  positions give the same logits (BigBird's random blocks are drawn per number of blocks, so
  the lengths, + 1 with CLS, stay within 7 blocks of 4)."""
  model = build(name, pooling=pooling)
  tokens = helpers.random_tokens((2, 27), seed=1)
  tokens[:, 24:] = 0
  tokens[1, 20:] = 0   # rows of different lengths
  long_run, weights = runner(model, 27)
  short_state = helpers.initial_state(model, helpers.token_signature(2, 26))
  short = jax.jit(lambda t: model.pure_fn(t, weights, short_state, None)[0])
  np.testing.assert_allclose(long_run(tokens), short(tokens[:, :26]), rtol=1e-5, atol=1e-5)
  changed = tokens.copy()
  changed[0, 3] = changed[0, 3] % (helpers.VOCAB - 1) + 1   # a real token counts
  assert not np.allclose(long_run(tokens)[0], long_run(changed)[0], atol=1e-4)


def test_without_pad_id_every_token_counts_even_zero():
  """pad_id=0 masks trailing zeros (dropping two changes nothing); pad_id=None reads them as
  pixels (dropping two changes the logits)."""
  tokens = helpers.random_tokens((2, 28), seed=2)
  tokens[:, 24:] = 0
  for pad_id, same in ((0, True), (None, False)):
    model = build('TransformerEncoder', pad_id=pad_id)
    run, weights = runner(model, 28)
    short_state = helpers.initial_state(model, helpers.token_signature(2, 26))
    short = jax.jit(lambda t: model.pure_fn(t, weights, short_state, None)[0])  # pylint: disable=cell-var-from-loop
    assert np.allclose(run(tokens), short(tokens[:, :26]), atol=1e-5) == same, pad_id


def test_cls_pooling_reads_the_learned_token():
  model = build('TransformerEncoder', pooling='cls')
  assert 'ClsToken' not in [layer.name for layer in build('TransformerEncoder').sublayers]
  index = [layer.name for layer in model.sublayers].index('ClsToken')
  run, weights = runner(model, 12)
  moved = list(weights)
  rng = np.random.default_rng(3)
  moved[index] = classifier.ClsTokenWeights(jnp.asarray(rng.standard_normal(16), jnp.float32))
  state = helpers.initial_state(model, helpers.token_signature(2, 12))
  other = jax.jit(lambda t: model.pure_fn(t, tuple(moved), state, None)[0])
  tokens = helpers.random_tokens((2, 12), seed=3)
  assert not np.allclose(run(tokens), other(tokens), atol=1e-4)


def test_cls_token_keeps_a_masked_length_even_for_cudnn():
  x = jnp.ones((2, 6, 4))
  weights = classifier.ClsTokenWeights(jnp.full((4,), 2.0))
  (y, mask), _ = classifier.ClsToken(masked=True).pure_fn((x, jnp.ones((2, 6), bool)), weights,
                                                          (), None)
  assert y.shape == (2, 8, 4) and mask.tolist() == [[True] * 7 + [False]] * 2
  assert np.all(y[:, 0] == 2.0) and np.all(y[:, 1:7] == 1.0)
  (y, mask), _ = classifier.ClsToken(masked=True).pure_fn(
      (x[:, :5], jnp.ones((2, 5), bool)), weights, (), None)
  assert y.shape == (2, 6, 4) and bool(mask.all())
  y, _ = classifier.ClsToken(masked=False).pure_fn(x, weights, (), None)
  assert y.shape == (2, 7, 4)   # unmasked attention has no length rule


def test_unknown_pooling_is_refused_by_name():
  with pytest.raises(ValueError, match=r"TransformerEncoder: pooling must be one of .*'max'"):
    build('TransformerEncoder', pooling='max')


def test_default_encoder_keeps_its_weights_tree():
  """pooling='mean', pad_id=0, head_d_ff=0 is the structure earlier checkpoints hold."""
  model = build('TransformerEncoder')
  names = [layer.name for layer in model.sublayers]
  assert names == ['Branch', 'EncoderBlock', 'EncoderBlock', 'LayerNorm', 'MaskedMean',
                   'Dense_3']


def test_reformer_raw_keys_keep_the_weights_and_change_the_logits():
  """normalize_keys=False (LRA's Reformer: the queries themselves are the keys) adds no
  weight: the same init rng gives the same tree and values; the same weights then give
  other logits."""
  raw = build('ReformerEncoder', normalize_keys=False)
  unit = build('ReformerEncoder')
  sig = helpers.token_signature(2, 24)
  raw_w, _ = raw.init(sig, jax.random.key(3))
  unit_w, _ = unit.init(sig, jax.random.key(3))
  assert jax.tree_util.tree_structure(raw_w) == jax.tree_util.tree_structure(unit_w)
  for r, u in zip(jax.tree_util.tree_leaves(raw_w), jax.tree_util.tree_leaves(unit_w)):
    np.testing.assert_array_equal(r, u)
  tokens = helpers.random_tokens((2, 24), seed=4)
  raw_run, weights = runner(raw, 24)
  unit_run, same = runner(unit, 24)
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(weights),
                                                  jax.tree_util.tree_leaves(same)))
  assert not np.allclose(raw_run(tokens), unit_run(tokens), atol=1e-3)


def _position_tables(model, length=24):
  weights, _ = model.init(helpers.token_signature(2, length), jax.random.key(3))
  found = jax.tree_util.tree_leaves(
      weights, is_leaf=lambda w: isinstance(w, tl.PositionalEncodingWeights))
  return [w.table for w in found if isinstance(w, tl.PositionalEncodingWeights)]


@pytest.mark.parametrize('name', sorted(KINDS))
def test_learned_positions_start_at_the_std_asked_for(name):
  """LRA starts learned positions at std 0.02; plait's default is 1.0 (the tokens' scale)."""
  for std, expected in ((None, 1.0), (0.02, 0.02)):
    tables = _position_tables(build(name, positional='learned', positional_init_std=std))
    assert [t.shape for t in tables] == [(TINY['max_len'], TINY['d_model'])]
    assert float(jnp.std(tables[0])) == pytest.approx(expected, rel=0.1)
  again = _position_tables(build(name, positional='learned', positional_init_std=0.02))
  np.testing.assert_array_equal(again[0], tables[0])   # same rng, same table


@pytest.mark.parametrize('bad, match', [
    (dict(positional_init_std=0.02), "learned positions .*got positional='sinusoidal'"),
    (dict(positional='learned', positional_init_std=0.0), 'a number > 0, got 0.0'),
    (dict(positional='learned', positional_init_std='0.02'), "a number > 0, got '0.02'")])
def test_positional_init_std_without_a_learned_table_is_refused(bad, match):
  with pytest.raises(ValueError, match=match):
    build('TransformerEncoder', **bad)


# ----- two towers -----

def _tower(**kwargs):
  return models.TransformerEncoder(vocab_size=helpers.VOCAB, d_model=16, d_ff=32, n_layers=1,
                                   n_heads=2, dropout=0.1, **kwargs)


def test_two_tower_encodes_each_document_alone_with_one_tower():
  model = models.TwoTowerClassifier(_tower, n_classes=2, d_ff=32, mode='eval')
  sig = tl.ShapeDtype((3, 2, 10), jnp.int32)
  weights = helpers.random_weights(model, sig)
  state = helpers.initial_state(model, sig)
  assert model.output_signature(sig).shape == (3, 2)
  pairs = helpers.random_tokens((3, 2, 10), seed=4)
  pairs[:, 1, 7:] = 0
  logits, _ = model.pure_fn(pairs, weights, state, None)
  # The same tower, alone, on each document; then the head on [u, v, u*v, u-v].
  tower = model.sublayers[1]
  tower_state = helpers.initial_state(tower, helpers.token_signature(3, 10))
  u = tower.pure_fn(pairs[:, 0], weights[1], tower_state, None)[0]
  v = tower.pure_fn(pairs[:, 1], weights[1], tower_state, None)[0]
  head = tl.Serial(model.sublayers[3:])
  def logits_of(a, b):
    features = jnp.concatenate([a, b, a * b, a - b], axis=-1)
    return head.pure_fn(features, tuple(weights[3:]), tuple(state[3:]), None)[0]
  np.testing.assert_allclose(logits, logits_of(u, v), rtol=1e-5, atol=1e-5)
  swapped, _ = model.pure_fn(pairs[:, ::-1], weights, state, None)
  np.testing.assert_allclose(swapped, logits_of(v, u), rtol=1e-5, atol=1e-5)
  assert not np.allclose(swapped, logits, atol=1e-4)   # order matters through u - v


def test_two_tower_refuses_single_documents():
  model = models.TwoTowerClassifier(_tower, n_classes=2, d_ff=32, mode='eval')
  with pytest.raises(tl.LayerError, match=r'document pairs \(B, 2, L\), got shape \(3, 10\)'):
    model.output_signature(helpers.token_signature(3, 10))


# ----- gradients and a training step -----

def _loss(model, weights, state, batch, rng):
  inputs, targets = batch
  logits, _ = model.pure_fn(inputs, weights, state, rng)
  return jnp.mean(cross_entropy(logits, targets))


@pytest.mark.parametrize('name', ['TransformerEncoder', 'TwoTower'] + [
    pytest.param(name, marks=pytest.mark.slow) for name in sorted(KINDS)
    if name != 'TransformerEncoder'])   # each compiles a backward pass: ~20 s on 2 busy cores
def test_every_kind_gets_gradients_everywhere_and_a_step_lowers_the_loss(name):
  if name == 'TwoTower':
    model = models.TwoTowerClassifier(functools.partial(_tower, pooling='cls'), n_classes=3,
                                      d_ff=32, mode='train')
    inputs = helpers.random_tokens((4, 2, 20), seed=5)
    inputs[:, :, 15:] = 0
  else:
    model = build(name, mode='train', pooling='cls', head_d_ff=32, n_layers=1)
    inputs = helpers.random_tokens((4, 20), seed=5)
    inputs[:, 15:] = 0
  targets = np.array([0, 1, 2, 1], np.int32)
  weights, state = model.init(tl.signature(inputs), rng=jax.random.key(0))
  rng = jax.random.key(1)
  loss_and_grad = jax.jit(jax.value_and_grad(
      lambda w, batch: _loss(model, w, state, batch, rng)))
  loss, grads = loss_and_grad(weights, (inputs, targets))
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert np.all(np.isfinite(g)), path
    assert np.any(g != 0), f'no gradient reaches {jax.tree_util.keystr(path)}'
  stepped = jax.tree_util.tree_map(lambda w, g: w - 0.05 * g, weights, grads)
  assert loss_and_grad(stepped, (inputs, targets))[0] < loss
