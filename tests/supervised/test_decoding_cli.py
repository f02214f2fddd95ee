"""plait-decode: from a run directory (config.gin, orbax checkpoint, tokenizer) to text."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait import models
from plait.data.tokenizers import CharTokenizer
from plait.supervised import checkpoints, decode_cli, decoding
from tests.models import helpers

TEXT = 'the quick brown fox jumps over the lazy dog'
CONFIG = """
train.model = @TransformerLM
TransformerLM.vocab_size = {vocab}
TransformerLM.d_model = 16
TransformerLM.d_ff = 32
TransformerLM.n_layers = 1
TransformerLM.n_heads = 2
TransformerLM.max_len = 64
"""


def _lm(tokenizer, mode):
  return models.TransformerLM(vocab_size=tokenizer.vocab_size, d_model=16, d_ff=32, n_layers=1,
                              n_heads=2, max_len=64, mode=mode)


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  """A run directory as plait-train leaves it, with a checkpoint at step 7."""
  directory = tmp_path_factory.mktemp('run')
  tokenizer = CharTokenizer.from_text(TEXT)
  model = _lm(tokenizer, 'train')
  sig = helpers.token_signature(2, 16)
  weights = helpers.random_weights(model, sig, seed=3, scale=0.5)
  state = helpers.initial_state(model, sig)
  checkpointer = checkpoints.Checkpointer(str(directory), async_save=False)
  checkpointer.save(7, model, weights, state, opt_state=(), rng=jax.random.key(0),
                    data_position={})
  checkpointer.close()
  checkpoints.save_tokenizer(tokenizer, str(directory))
  (directory / 'config.gin').write_text(CONFIG.format(vocab=tokenizer.vocab_size))
  return directory, tokenizer, weights


def test_restore_weights_reads_the_checkpoint(run_dir):
  directory, tokenizer, weights = run_dir
  restored, step = decoding.restore_weights(str(directory), _lm(tokenizer, 'eval'))
  assert step == 7
  for a, b in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(weights)):
    np.testing.assert_array_equal(a, b)


def test_cli_decodes_like_the_library(run_dir, capsys):
  directory, tokenizer, weights = run_dir
  code = decode_cli.main([f'--output_dir={directory}', '--prompt=the qu', '--max_length=12',
                          '--temperature=0'])
  assert code == 0
  printed = capsys.readouterr().out.rstrip('\n')
  prompt = jnp.asarray(tokenizer.encode('the qu'))[None]
  ids = decoding.autoregressive_sample(_lm(tokenizer, 'predict'), prompt, temperature=0.0,
                                       max_length=12, eos_id=tokenizer.eos_id, weights=weights)
  assert printed == 'the qu' + tokenizer.decode(ids[0])


def test_cli_without_checkpoint_fails_clearly(tmp_path, capsys):
  (tmp_path / 'config.gin').write_text(CONFIG.format(vocab=8))
  assert decode_cli.main([f'--output_dir={tmp_path}', '--prompt=a']) == 1
  assert 'no complete checkpoint in' in capsys.readouterr().err


def test_cli_without_config_fails_clearly(tmp_path, capsys):
  assert decode_cli.main([f'--output_dir={tmp_path}']) == 1
  assert 'config.gin not found' in capsys.readouterr().err


def test_restore_weights_of_a_model_with_layer_state(tmp_path):
  """LSH keeps buckets in state: the checkpoint's state layout is read from its metadata."""
  make = lambda mode: models.ReformerLM(vocab_size=11, d_model=16, d_ff=32, n_layers=1,
                                        n_heads=2, max_len=32, attention_type='lsh', mode=mode)
  model = make('train')
  sig = helpers.token_signature(2, 32)
  weights = helpers.random_weights(model, sig, seed=4, scale=0.5)
  state = helpers.initial_state(model, sig)
  assert jax.tree_util.tree_leaves(state), 'the test needs a model with layer state'
  checkpointer = checkpoints.Checkpointer(str(tmp_path), async_save=False)
  checkpointer.save(3, model, weights, state, opt_state=(), rng=jax.random.key(0),
                    data_position={})
  checkpointer.close()
  restored, step = decoding.restore_weights(str(tmp_path), make('eval'))
  assert step == 3
  for a, b in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(weights)):
    np.testing.assert_array_equal(a, b)


def test_cli_samples_only_ids_the_tokenizer_knows(tmp_path, capsys):
  """A model vocabulary larger than the tokenizer's (as in the tiny demo configs): an
  undertrained model may favour the unused ids; the CLI never samples them."""
  tokenizer = CharTokenizer.from_text(TEXT)
  big = tokenizer.vocab_size + 40
  make = lambda mode: models.TransformerLM(vocab_size=big, d_model=16, d_ff=32, n_layers=1,
                                           n_heads=2, max_len=64, mode=mode)
  model = make('train')
  sig = helpers.token_signature(2, 16)
  weights = helpers.random_weights(model, sig, seed=3, scale=0.5)
  # Make the unused ids the most likely: the output bias is the last weight of the model.
  leaves, tree = jax.tree_util.tree_flatten(weights)
  bias = np.asarray(leaves[-1]).copy()
  assert bias.shape == (big,)
  bias[tokenizer.vocab_size:] = 50.0
  weights = jax.tree_util.tree_unflatten(tree, leaves[:-1] + [jnp.asarray(bias)])
  checkpointer = checkpoints.Checkpointer(str(tmp_path), async_save=False)
  checkpointer.save(1, model, weights, helpers.initial_state(model, sig), opt_state=(),
                    rng=jax.random.key(0), data_position={})
  checkpointer.close()
  checkpoints.save_tokenizer(tokenizer, str(tmp_path))
  (tmp_path / 'config.gin').write_text(CONFIG.format(vocab=big))
  assert decode_cli.main([f'--output_dir={tmp_path}', '--prompt=the', '--max_length=20',
                          '--temperature=1.0']) == 0
  assert capsys.readouterr().out.startswith('the')
  # Without the restriction, the library samples the unused ids.
  ids = decoding.autoregressive_sample(make('predict'), jnp.asarray(tokenizer.encode('the'))[None],
                                       temperature=1.0, max_length=20, rng=jax.random.key(0),
                                       weights=weights)
  assert (ids >= tokenizer.vocab_size).any()


@pytest.mark.parametrize('argument, message', [
    ('--max_length=0', 'whole number >= 1'), ('--max_length=-3', 'whole number >= 1'),
    (f'--seed={2 ** 70}', r'whole number in \[0, 4294967295\]'),
    ('--temperature=nan', 'finite number >= 0'), ('--temperature=inf', 'finite number >= 0'),
    ('--temperature=-1', 'finite number >= 0'), ('--top_k=0', 'whole number >= 1'),
    ('--top_p=0', r'finite number > 0.0 and <= 1.0'), ('--top_p=nan', 'finite number'),
])
def test_sampling_arguments_out_of_range_are_one_usage_line_exit_2(run_dir, argument, message,
                                                                  capsys):
  with pytest.raises(SystemExit) as exit_info:   # before anything is loaded
    decode_cli.main([f'--output_dir={run_dir[0]}', argument])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert re.search(message, err.splitlines()[-1]) and 'Traceback' not in err
