"""Tiny model configurations and cheap random weights shared by model and decoding tests."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from plait import layers as tl
from plait import models
from plait.shapes import ShapeDtype

VOCAB = 32
SMALL = dict(d_model=32, d_ff=64, n_layers=2, n_heads=4, dropout=0.1)
LSH = functools.partial(tl.LSHSelfAttention, causal=True, n_hashes=2, n_buckets=4, chunk_len=4)
CHUNKED = functools.partial(tl.ChunkedCausalAttention, chunk_len=4, n_chunks_before=1)

# name -> (model function, kwargs, mode of the slow re-run reference, its pad_multiple).
# ReformerLM with several LSH chunks re-runs in predict mode from a fresh cache (the
# definition LSH decoding follows, see attention/lsh/decode.py); BigBird pads to max_len because
# its random pattern is drawn for the padded number of blocks.
LMS = {
    'TransformerLM': (models.TransformerLM,
                      dict(vocab_size=VOCAB, max_len=64, attention_type=['dense', CHUNKED],
                           **SMALL), 'eval', 32),
    'ReformerLM': (models.ReformerLM,
                   dict(vocab_size=VOCAB, max_len=64, attention_type=[CHUNKED, LSH],
                        ff_chunk_size=8, **SMALL), 'predict', 32),
    'PerformerLM': (models.PerformerLM,
                    dict(vocab_size=VOCAB, max_len=64, nb_features=16, **SMALL), 'eval', 32),
    'BigBirdLM': (models.BigBirdLM,
                  dict(vocab_size=VOCAB, max_len=64, block_size=4, num_rand_blocks=1, **SMALL),
                  'eval', 64),
    # Rotary positions: no additive table; every attention layer rotates q and k.
    'TransformerLM_rotary': (models.TransformerLM,
                             dict(vocab_size=VOCAB, max_len=64, attention_type=['dense', CHUNKED],
                                  positional='rotary', **SMALL), 'eval', 32),
    'ReformerLM_rotary': (models.ReformerLM,
                          dict(vocab_size=VOCAB, max_len=64, attention_type=[CHUNKED, LSH],
                               ff_chunk_size=8, positional='rotary', **SMALL), 'predict', 32),
    'ImageReformerLM': (models.ImageReformerLM,
                        dict(image_shape=(4, 4, 3), d_model=32, d_ff=64, n_layers=2, n_heads=4,
                             attention_type=[CHUNKED, LSH]), 'predict', 48),
}

ENCODERS = {
    'TransformerEncoder': (models.TransformerEncoder, dict(vocab_size=VOCAB, n_classes=3,
                                                           **SMALL)),
    'PerformerEncoder': (models.PerformerEncoder, dict(vocab_size=VOCAB, n_classes=3,
                                                       nb_features=16, **SMALL)),
    'BigBirdEncoder': (models.BigBirdEncoder, dict(vocab_size=VOCAB, n_classes=3, block_size=4,
                                                   num_rand_blocks=1, **SMALL)),
    'TransformerEncoder_rotary': (models.TransformerEncoder,
                                  dict(vocab_size=VOCAB, n_classes=3, positional='rotary',
                                       pooling='cls', **SMALL)),
}


def abstract_init(model, input_signature):
  """(weights, state) as ShapeDtypeStructs, without computing anything."""
  return jax.eval_shape(lambda: model.init_guarded(input_signature, jax.random.key(0))[:2])


def random_weights(model, input_signature, seed=0, scale=0.3):
  """Random normal weights in the model's tree (no XLA compile, unlike model.init)."""
  weights, _ = abstract_init(model, input_signature)
  leaves, treedef = jax.tree_util.tree_flatten(weights)
  rng = np.random.default_rng(seed)
  values = [jnp.asarray(scale * rng.standard_normal(l.shape).astype(np.float32)).astype(l.dtype)
            for l in leaves]
  return jax.tree_util.tree_unflatten(treedef, values)


def token_signature(batch, length):
  return ShapeDtype((batch, length), jnp.int32)


def random_tokens(shape, seed=0, low=1, high=VOCAB):
  return np.random.default_rng(seed).integers(low, high, shape).astype(np.int32)


def initial_state(model, input_signature):
  """The model's initial state for `input_signature` (all of plait's initial states are 0)."""
  _, state = abstract_init(model, input_signature)
  return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), state)
