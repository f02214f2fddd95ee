"""Every model builds in train/eval/predict, gives the documented output shapes, and keeps
one weights tree across modes (so predict-mode decoding uses trained weights)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait import layers as tl
from plait import models
from plait.models import blocks
from tests.models import helpers


@pytest.mark.parametrize('name', sorted(helpers.LMS))
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_lm_output_shape(name, mode):
  fn, kwargs, _, _ = helpers.LMS[name]
  length = 48 if name.startswith('Image') else 16
  model = fn(**kwargs, mode=mode)
  out = model.output_signature(helpers.token_signature(2, length))
  vocab = 256 if name.startswith('Image') else helpers.VOCAB
  assert out.shape == (2, length, vocab)
  assert out.dtype == jnp.float32


@pytest.mark.parametrize('name', sorted(helpers.LMS))
def test_predict_mode_has_the_train_mode_weights_tree(name):
  fn, kwargs, _, _ = helpers.LMS[name]
  train_w, _ = helpers.abstract_init(fn(**kwargs, mode='train'), helpers.token_signature(2, 16))
  predict_w, predict_s = helpers.abstract_init(fn(**kwargs, mode='predict'),
                                               helpers.token_signature(2, 1))
  assert jax.tree_util.tree_structure(train_w) == jax.tree_util.tree_structure(predict_w)
  for a, b in zip(jax.tree_util.tree_leaves(train_w), jax.tree_util.tree_leaves(predict_w)):
    assert (a.shape, a.dtype) == (b.shape, b.dtype)
  assert jax.tree_util.tree_leaves(predict_s), 'predict mode must keep caches in state'


@pytest.mark.parametrize('name', sorted(helpers.ENCODERS))
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_encoder_output_shape(name, mode):
  fn, kwargs = helpers.ENCODERS[name]
  out = fn(**kwargs, mode=mode).output_signature(helpers.token_signature(3, 32))
  assert out.shape == (3, 3)


def test_encoder_ignores_padding_tokens():
  fn, kwargs = helpers.ENCODERS['TransformerEncoder']
  model = fn(**kwargs, mode='eval')
  sig = helpers.token_signature(2, 12)
  weights = helpers.random_weights(model, sig)
  state = helpers.initial_state(model, sig)
  tokens = helpers.random_tokens((2, 12))
  tokens[:, 8:] = 0
  padded_more = np.concatenate([tokens[:, :6], np.zeros((2, 6), np.int32)], axis=1)
  run = jax.jit(lambda t: model.pure_fn(t, weights, state, None)[0])
  assert not np.allclose(run(tokens), run(padded_more), atol=1e-4)  # real tokens count
  tokens_padded_later = tokens.copy()
  tokens_padded_later[:, 8:] = 0
  # Pad tokens are masked out: padding the same sequence to another length changes nothing.
  shorter = tokens[:, :10]
  run_short = jax.jit(lambda t: model.pure_fn(t, weights, helpers.initial_state(
      model, helpers.token_signature(2, 10)), None)[0])
  np.testing.assert_allclose(run(tokens), run_short(shorter), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_reformer_gradients_equal_the_non_reversible_formulation():
  """Train-mode ReformerLM (dropout, LSH) vs the same layers under Serial, plain backprop."""
  fn, kwargs, _, _ = helpers.LMS['ReformerLM']
  model = fn(**kwargs, mode='train')
  plain = tl.Serial([tl.Serial(l.sublayers) if isinstance(l, tl.ReversibleSerial) else l
                     for l in model.sublayers])
  sig = helpers.token_signature(2, 16)
  weights = helpers.random_weights(model, sig)
  state = helpers.initial_state(model, sig)
  tokens = helpers.random_tokens((2, 16))

  def grads(layer):
    def loss(w):
      logits, _ = layer.pure_fn(tokens, w, state, jax.random.key(7))
      return tl.metrics.cross_entropy(logits, tokens).mean()
    return jax.jit(jax.value_and_grad(loss))(weights)

  (value, g), (value_plain, g_plain) = grads(model), grads(plain)
  np.testing.assert_allclose(value, value_plain, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_plain)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_reformer_training_reduces_loss():
  import optax  # pylint: disable=g-import-not-at-top
  model = models.ReformerLM(vocab_size=helpers.VOCAB, d_model=32, d_ff=64, n_layers=2,
                            n_heads=2, max_len=16, dropout=0.0, attention_type=helpers.CHUNKED,
                            mode='train')
  sig = helpers.token_signature(4, 16)
  weights = helpers.random_weights(model, sig, scale=0.1)
  state = helpers.initial_state(model, sig)
  tokens = jnp.asarray(np.tile(np.arange(1, 17, dtype=np.int32), (4, 1)))  # learnable
  tx = optax.adam(0.03)

  def loss(w):
    logits, _ = model.pure_fn(tokens, w, state, jax.random.key(0))
    return tl.metrics.cross_entropy(logits, tokens).mean()

  @jax.jit
  def step(w, opt_state):
    value, grads = jax.value_and_grad(loss)(w)
    updates, opt_state = tx.update(grads, opt_state, w)
    return optax.apply_updates(w, updates), opt_state, value

  opt_state, losses = tx.init(weights), []
  for _ in range(8):
    weights, opt_state, value = step(weights, opt_state)
    losses.append(float(value))
  assert np.isfinite(losses).all()
  assert losses[-1] < 0.7 * losses[0], losses


def test_attention_type_names_resolve():
  assert blocks.attention_constructor('dense', causal=True) is tl.CausalAttention
  assert blocks.attention_constructor('dense', causal=False) is tl.SelfAttention
  assert blocks.attention_constructor('chunked', causal=True) is tl.ChunkedCausalAttention
  assert blocks.attention_types_per_layer(['a', 'b'], 3) == ['a', 'b', 'a']
  model = models.TransformerLM(vocab_size=8, d_model=16, d_ff=16, n_layers=1, n_heads=2,
                               attention_type='lsh', max_len=32, mode='eval')
  assert 'LSHSelfAttention' in repr(model)


def test_unknown_attention_type_is_a_clear_error():
  with pytest.raises(ValueError, match="attention_type must be one of .*'lsh'"):
    models.TransformerLM(vocab_size=8, attention_type='sparse-ish')


def test_axial_embeddings_must_sum_to_d_model():
  with pytest.raises(ValueError, match='must sum to d_model=32'):
    models.ReformerLM(vocab_size=8, d_model=32, axial_pos_shape=(4, 4),
                      d_axial_pos_embs=(16, 8))


def test_mode_is_checked():
  with pytest.raises(ValueError, match="TransformerLM: mode must be"):
    models.TransformerLM(mode='decode')


def test_every_model_is_exported():
  for name in models.__all__:
    assert callable(getattr(models, name))
  assert {'TransformerLM', 'TransformerEncoder', 'ReformerLM', 'PerformerLM', 'BigBirdEncoder',
          'BigBirdLM'} <= set(models.__all__)
