"""positional='rotary' in every model: no additive table, every attention layer rotary; errors."""
import functools

import numpy as np
import pytest

from plait import layers as tl
from plait import models
from plait.layers.base import walk_layers
from plait.layers.positional import PositionalEncoding
from tests.models import helpers

SMALL = dict(d_model=32, d_ff=64, n_layers=2, n_heads=4)
MODELS = {
    'TransformerLM': functools.partial(models.TransformerLM, vocab_size=16, max_len=64),
    'ReformerLM': functools.partial(models.ReformerLM, vocab_size=16, max_len=64,
                                    attention_type=[helpers.CHUNKED, helpers.LSH]),
    'PerformerLM': functools.partial(models.PerformerLM, vocab_size=16, nb_features=8),
    'BigBirdLM': functools.partial(models.BigBirdLM, vocab_size=16, max_len=64, block_size=4,
                                   num_rand_blocks=1),
    'TransformerEncoder': functools.partial(models.TransformerEncoder, vocab_size=16,
                                            n_classes=3),
    'ReformerEncoder': functools.partial(models.ReformerEncoder, vocab_size=16, n_classes=3,
                                         n_buckets=4, chunk_len=8),
    'PerformerEncoder': functools.partial(models.PerformerEncoder, vocab_size=16, n_classes=3,
                                          nb_features=8),
    'BigBirdEncoder': functools.partial(models.BigBirdEncoder, vocab_size=16, n_classes=3,
                                        block_size=4, num_rand_blocks=1),
    'LocalEncoder': functools.partial(models.LocalEncoder, vocab_size=16, n_classes=3,
                                      chunk_len=8),
}


@pytest.mark.parametrize('name', sorted(MODELS))
def test_rotary_models_rotate_every_attention_layer_and_add_no_table(name):
  model = MODELS[name](**SMALL, positional='rotary', mode='eval')
  found = list(walk_layers(model))
  attention = [l for l in found if isinstance(l, tl.Attention)]
  assert len(attention) == 2 and all(l.rotary for l in attention)
  assert not any(isinstance(l, (PositionalEncoding, tl.AxialPositionalEncoding)) for l in found)
  sig = helpers.token_signature(2, 32)
  out = model.pure_fn(helpers.random_tokens((2, 32), seed=3, high=16),
                      helpers.random_weights(model, sig), helpers.initial_state(model, sig))[0]
  assert np.all(np.isfinite(out))
  plain = MODELS[name](**SMALL, mode='eval')   # the default: sinusoids, no rotary layer
  assert not any(l.rotary for l in walk_layers(plain) if isinstance(l, tl.Attention))


def test_compaction_with_rotary_positions_is_refused():
  with pytest.raises(ValueError, match='TransformerEncoder: compact_to.*rotary'):
    models.TransformerEncoder(vocab_size=16, n_classes=3, **SMALL, positional='rotary',
                              compact_to=16)


def test_rotary_with_axial_tables_is_refused():
  with pytest.raises(ValueError, match="positional='rotary'.*axial_pos_shape.*\\(8, 8\\)"):
    models.TransformerLM(vocab_size=16, max_len=64, **SMALL, positional='rotary',
                         axial_pos_shape=(8, 8), d_axial_pos_embs=(16, 16))


@pytest.mark.parametrize('name', ['TransformerLM', 'ReformerLM', 'TransformerEncoder'])
def test_an_unknown_positional_lists_the_choices(name):
  with pytest.raises(ValueError, match=f"{name}: positional must be one of .*'rotary'.*"
                                       "'rope'"):
    MODELS[name](**SMALL, positional='rope')


def test_a_constructor_without_rotary_is_refused_not_silently_unrotated():
  def MyAttention(d_model, n_heads, mode='train'):  # pylint: disable=invalid-name
    return tl.SelfAttention(d_model, n_heads=n_heads, mode=mode)
  with pytest.raises(TypeError, match="positional='rotary'.*MyAttention.*no `rotary`"):
    models.TransformerEncoder(vocab_size=16, n_classes=3, **SMALL, attention_type=MyAttention,
                              positional='rotary')
  model = models.TransformerEncoder(vocab_size=16, n_classes=3, **SMALL,
                                    attention_type=MyAttention)   # without rotary: fine
  assert model.output_signature(helpers.token_signature(2, 8)).shape == (2, 3)
