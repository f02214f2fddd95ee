"""ReformerLM(output_chunk_size=...): the same logits and gradients as the unchunked head."""
import jax
import jax.numpy as jnp
import numpy as np

from plait import models
from tests.models import helpers


def _model(output_chunk_size, mode='train'):
  # One layer: only the head is chunked (two layers compiled 2.5x longer for the same check).
  return models.ReformerLM(vocab_size=helpers.VOCAB, d_model=32, d_ff=64, n_layers=1, n_heads=4,
                           max_len=64, dropout=0.0, attention_type=[helpers.CHUNKED, helpers.LSH],
                           ff_chunk_size=8, output_chunk_size=output_chunk_size, mode=mode)


def _nest_head(weights):
  """Unchunked ReformerLM weights -> the chunked model's (the head moves into a Chunk)."""
  body, head = weights[:4], tuple(weights[4:])
  return body + ((((), ()), (head,), ()),)


def test_output_chunks_give_the_same_logits_and_gradients():
  plain, chunked = _model(0), _model(8)
  sig = helpers.token_signature(2, 16)
  weights = helpers.random_weights(plain, sig)
  nested = _nest_head(weights)
  assert (jax.tree_util.tree_structure(nested) ==
          jax.tree_util.tree_structure(helpers.random_weights(chunked, sig)))
  tokens = helpers.random_tokens((2, 16))

  def value_and_grads(model, w):
    state = helpers.initial_state(model, sig)
    def loss(w):
      logits, _ = model.pure_fn(tokens, w, state, jax.random.key(7))
      return jnp.mean(jnp.sin(logits)), logits
    return jax.jit(jax.value_and_grad(loss, has_aux=True))(w)

  (_, got_logits), got = value_and_grads(chunked, nested)
  (_, want_logits), want = value_and_grads(plain, weights)
  assert got_logits.shape == (2, 16, helpers.VOCAB)
  np.testing.assert_allclose(got_logits, want_logits, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(_nest_head(want))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_output_chunks_in_predict_mode_take_one_token():
  model = _model(8, mode='predict')
  out = model.output_signature(helpers.token_signature(2, 1))
  assert tuple(out.shape) == (2, 1, helpers.VOCAB)
