"""plait-decode: from a run directory (config.gin, orbax checkpoint, tokenizer) to text."""
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait import layers as tl
from plait import models
from plait.data.tokenizers import CharTokenizer
from plait.supervised import checkpoints, decode_cli, decoding
from tests.models import helpers
from tests.supervised.helpers import CountCalls

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
  """A checkpoint with layer state restores into a decoding model whose state (caches) is
  laid out otherwise: the checkpoint's state layout is read from its metadata."""
  make = lambda mode: tl.Serial(
      models.ReformerLM(vocab_size=11, d_model=16, d_ff=32, n_layers=1, n_heads=2,
                        max_len=32, attention_type='lsh', mode=mode), CountCalls())
  model = make('train')
  sig = helpers.token_signature(2, 32)
  weights = helpers.random_weights(model, sig, seed=4, scale=0.5)
  state = helpers.initial_state(model, sig)
  assert jax.tree_util.tree_leaves(state), 'the test needs a model with layer state'
  checkpointer = checkpoints.Checkpointer(str(tmp_path), async_save=False)
  checkpointer.save(3, model, weights, state, opt_state=(), rng=jax.random.key(0),
                    data_position={})
  checkpointer.close()
  restored, step = decoding.restore_weights(str(tmp_path), make('predict'))
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


def test_max_length_beyond_max_len_is_exit_2_naming_the_longest_that_fits(run_dir, capsys):
  directory = run_dir[0]
  args = [f'--output_dir={directory}', '--prompt=the qu', '--temperature=0']
  assert decode_cli.main(args + ['--max_length=1000']) == 2   # was: no text, a vague error
  err = capsys.readouterr().err
  assert ("--max_length=1000 does not fit: the model's max_len is 64 and the prompt takes 6; "
          'the longest that fits is --max_length=58.') in err and len(err.splitlines()) == 1
  assert decode_cli.main(args + ['--max_length=58']) == 0


def test_prompt_characters_the_tokenizer_cannot_encode_are_named(run_dir, capsys):
  directory = run_dir[0]
  assert decode_cli.main([f'--output_dir={directory}', '--prompt=the Zé q', '--max_length=2',
                          '--temperature=0']) == 0
  err = capsys.readouterr().err
  assert "warning: the tokenizer cannot encode 'Z', 'é' in the prompt" in err


def test_a_run_without_tokenizer_samples_ids(run_dir, tmp_path, capsys):
  """Duplication runs save no tokenizer: the prompt and the output are token ids."""
  directory, tokenizer, weights = run_dir
  shutil.copytree(directory / 'checkpoints', tmp_path / 'checkpoints')
  shutil.copy(directory / 'config.gin', tmp_path / 'config.gin')
  assert decode_cli.main([f'--output_dir={tmp_path}', '--prompt=3 4 5', '--max_length=6',
                          '--temperature=0']) == 0
  ids = decoding.autoregressive_sample(_lm(tokenizer, 'predict'), np.array([[3, 4, 5]]),
                                       temperature=0.0, max_length=6, weights=weights)
  assert capsys.readouterr().out == ' '.join(map(str, [3, 4, 5, *ids[0].tolist()])) + '\n'
  assert decode_cli.main([f'--output_dir={tmp_path}', '--prompt=the']) == 2
  assert 'token ids separated by spaces' in capsys.readouterr().err
  assert decode_cli.main([f'--output_dir={tmp_path}', '--prompt=3 999']) == 2
  assert f'--prompt ids must be in [0, {tokenizer.vocab_size - 1}]' in capsys.readouterr().err
  with pytest.raises(decode_cli.DecodeError, match='no tokenizer saved in .*an ids run'):
    decode_cli.decode(str(tmp_path))


IMAGE_CONFIG = """
train.model = @ImageTransformerLM
ImageTransformerLM.image_shape = (2, 3, 1)
ImageTransformerLM.d_model = 16
ImageTransformerLM.d_ff = 32
ImageTransformerLM.n_layers = 1
ImageTransformerLM.n_heads = 2
"""


def test_an_image_run_is_sampled_to_a_png_grid(tmp_path, capsys):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from plait.data import images  # pylint: disable=import-outside-toplevel
  make = lambda mode: models.ImageTransformerLM(image_shape=(2, 3, 1), d_model=16, d_ff=32,
                                                n_layers=1, n_heads=2, mode=mode)
  sig = helpers.token_signature(2, 6)
  weights = helpers.random_weights(make('train'), sig, seed=5, scale=0.5)
  checkpointer = checkpoints.Checkpointer(str(tmp_path), async_save=False)
  checkpointer.save(2, make('train'), weights, helpers.initial_state(make('train'), sig),
                    opt_state=(), rng=jax.random.key(0), data_position={})
  checkpointer.close()
  (tmp_path / 'config.gin').write_text(IMAGE_CONFIG)
  args = [f'--output_dir={tmp_path}', '--num_samples=3', '--seed=4']
  assert decode_cli.main(args) == 2       # before anything is sampled
  assert 'is an image run: pass --output=grid.png' in capsys.readouterr().err
  grid_path = tmp_path / 'grid.png'
  assert decode_cli.main(args + [f'--output={grid_path}']) == 0
  ids = decoding.autoregressive_sample(make('predict'), np.zeros((3, 0), np.int32),
                                       max_length=6, rng=jax.random.key(4), weights=weights)
  samples = images.tokens_to_images(ids, (2, 3, 1))[..., 0]       # (3, 2, 3)
  expected = np.zeros((4, 6), np.uint8)                            # 2 x 2 grid, one empty
  expected[:2, :3], expected[:2, 3:], expected[2:, :3] = samples
  np.testing.assert_array_equal(np.asarray(Image.open(grid_path)), expected)
