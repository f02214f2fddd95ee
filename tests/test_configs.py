"""Every shipped gin config parses, builds its model and shapes one batch (no training)."""
import gin
import jax.numpy as jnp
import pytest

from plait import demo
from plait import rl_free_configs
from plait.supervised import trainer

CONFIGS = rl_free_configs.names()
TINY = [n for n in CONFIGS if n.endswith('_tiny')]
# The language models' configs; the LRA classifiers' (lra_*) are tests/test_lra_configs.py's.
LM_CONFIGS = [n for n in CONFIGS if not n.startswith('lra_')]
LM_TINY = [n for n in LM_CONFIGS if n.endswith('_tiny')]


@pytest.fixture(autouse=True)
def _clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def _parse(name, bindings=()):
  trainer.parse_config([rl_free_configs.path(name)], list(bindings))


def test_every_full_config_has_a_tiny_variant():
  full = [n for n in CONFIGS if not n.endswith('_tiny')]
  assert {f'{n}_tiny' for n in full} == set(TINY)
  for family in ('reformer_crime_and_punishment', 'reformer_imagenet64', 'performer_',
                 'bigbird_', 'transformer_lm_'):
    assert any(n.startswith(family) for n in full), family


def test_unknown_config_name_lists_the_available_ones():
  with pytest.raises(ValueError, match='reformer_imagenet64_tiny'):
    rl_free_configs.path('reformer_imagenet')


@pytest.mark.parametrize('name', LM_CONFIGS)
def test_config_builds_model_and_output_signature(name):
  _parse(name)
  sig = demo.configured_signature()
  model = demo.configured_model('train')
  logits = model.output_signature(sig)
  vocab = 256 if 'imagenet' in name else gin.query_parameter(f'{model.name}.vocab_size')
  assert logits.shape == sig.shape + (vocab,)
  assert logits.dtype == jnp.float32
  predict_model = demo.configured_model('predict')   # decoding builds too
  assert predict_model.name == model.name


def test_reformer_full_config_is_the_whole_novel_as_one_long_sequence():
  _parse('reformer_crime_and_punishment')
  sig = demo.configured_signature()
  assert sig.shape[1] >= 2 ** 19
  assert gin.query_parameter('lm_inputs.whole_novel')
  assert gin.query_parameter('ReformerLM.axial_pos_shape') == (512, 1024)


def test_imagenet64_full_config_is_64x64x3():
  _parse('reformer_imagenet64')
  assert demo.configured_signature().shape[1] == 12288
  assert gin.query_parameter('ImageReformerLM.image_shape') == (64, 64, 3)


@pytest.mark.slow
def test_reformer_full_config_fits_the_training_text(monkeypatch, tmp_path):
  monkeypatch.setenv('PLAIT_CACHE_DIR', str(tmp_path))
  _parse('reformer_crime_and_punishment')
  inputs = gin.query_parameter('train.inputs').scoped_configurable_fn()
  tokens, _, weights = next(inputs())
  assert tokens.shape == (1, 2 ** 19)
  assert 2 ** 18 < weights.sum() <= 2 ** 19


@pytest.mark.slow
@pytest.mark.parametrize('name', LM_TINY)
def test_tiny_config_trains_and_checkpoints(name, tmp_path):
  _parse(name, ['train.steps = 30', 'LoopSettings.checkpoint_every = 30', 'LoopSettings.log_every = 10'])
  loop = trainer.train(str(tmp_path))
  losses = [h['loss'] for h in loop.history if h['split'] == 'train']
  assert loop.step == 30
  assert losses[-1] < losses[0]
  assert (tmp_path / 'checkpoints' / '30').is_dir()
