"""A binding nothing uses stops plait-train (exit 2, nothing written) instead of doing nothing.

gin applies a binding only when gin itself calls the configurable; a layer a model builds in
its own code (PositionalEncoding inside TransformerEncoder) never sees its bindings.
"""
import gin
import pytest

from plait import rl_free_configs
from plait.supervised import gin_config
from plait.supervised import trainer
from plait.supervised.streams import DataError

TINY = 'lra_pathfinder_transformer_tiny'


@pytest.fixture(autouse=True)
def _clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def _train_cli(tmp_path, *bindings):
  args = [f'--config_file={TINY}', f'--output_dir={tmp_path / "run"}', '--steps=1']
  return trainer.main(args + [f'--config={b}' for b in bindings])


def test_a_binding_on_a_layer_inside_the_model_is_exit_2_naming_it(tmp_path, capsys):
  assert _train_cli(tmp_path, "PositionalEncoding.kind = 'learned'") == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'would have no effect: PositionalEncoding.kind.' in err
  assert "the model's own arguments" in err and 'TransformerEncoder.positional' in err
  assert not (tmp_path / 'run').exists()


def test_every_unused_binding_is_named_at_once(tmp_path, capsys):
  # a scope nothing is called in; an argument the trainer passes itself (the learning rate,
  # from the config's schedule); a macro never referenced; used bindings are not named
  assert _train_cli(tmp_path, 'nowhere/AdamW.b2 = 0.9', 'AdamW.learning_rate = 0.01',
                    'UNUSED_SIZE = 3', 'eval/lra_pathfinder_inputs.batch_size = 4',
                    'AdamW.b1 = 0.8') == 2
  err = capsys.readouterr().err
  assert ('3 binding(s) would have no effect: AdamW.learning_rate, UNUSED_SIZE (a macro), '
          'nowhere/AdamW.b2.') in err


def test_arguments_a_python_caller_gives_train_override_its_bindings(tmp_path):
  """benchmarks/lra.py passes train() the data it made from the config's train.inputs."""
  trainer.parse_config([rl_free_configs.path(TINY)], ['train.steps = 1'])
  make = gin.query_parameter('train.inputs').scoped_configurable_fn
  with gin.config_scope('eval'):
    made_eval = make()
  loop = trainer.train(str(tmp_path / 'run'), inputs=make(), eval_inputs=made_eval)
  assert loop.step == 1
  assert gin_config.unused_bindings() == ['train.eval_inputs', 'train.inputs']


def test_data_and_settings_a_python_caller_reuses_need_not_call_their_configurables(tmp_path):
  """lra.py's second model of a task reuses the data made for the first, and gives settings."""
  trainer.parse_config([rl_free_configs.path(TINY)], ['train.steps = 1'])
  make = gin.query_parameter('train.inputs').scoped_configurable_fn
  with gin.config_scope('eval'):
    made_eval = make()
  made = make()
  settings = trainer.LoopSettings(log_every=1)
  trainer.train(str(tmp_path / 'first'), inputs=made, eval_inputs=made_eval, settings=settings)
  gin.clear_config()
  trainer.parse_config([rl_free_configs.path(TINY)], ['train.steps = 1'])
  loop = trainer.train(str(tmp_path / 'second'), inputs=made, eval_inputs=made_eval,
                       settings=settings)   # lra_pathfinder_inputs and LoopSettings not called
  assert loop.step == 1
  assert 'LoopSettings.log_every' in gin_config.unused_bindings()


def test_bindings_of_a_scope_apply_to_calls_within_it():
  # bindings of scope 'a' apply to calls in 'a' and 'a/b', not 'ab' or 'b/a'
  assert gin_config._within('', 'eval')
  assert gin_config._within('a', 'a') and gin_config._within('a', 'a/b')
  assert not gin_config._within('a', 'ab') and not gin_config._within('a', 'b/a')
  assert not gin_config._within('a', '')


def _parts_built(name, monkeypatch):
  """Parses a shipped config and builds what train() builds; missing data is skipped."""
  opened = trainer._open_data

  def open_or_skip(inputs, what):
    # No ImageNet/Image/Text/Retrieval data on CI: the configurable's call is recorded anyway.
    try:
      data, tokenizer = opened(inputs, what)
    except DataError:
      return (lambda: iter(())), None

    def data_or_nothing():
      try:
        return data()
      except DataError:
        return iter(())
    return (data_or_nothing if callable(data) else data), tokenizer

  class Built(Exception):
    pass

  def stop(*unused_args):
    raise Built

  monkeypatch.setattr(trainer, '_open_data', open_or_skip)
  monkeypatch.setattr(trainer, '_check_bindings_used', stop)
  trainer.parse_config([rl_free_configs.path(name)], [])
  with pytest.raises(Built):
    trainer.train('/nonexistent/never/written', settings=trainer.ConfiguredLoopSettings())


@pytest.mark.parametrize('name', rl_free_configs.names())
def test_every_shipped_config_uses_every_binding(name, monkeypatch, tmp_path):
  monkeypatch.setenv('PLAIT_CACHE_DIR', str(tmp_path))
  _parts_built(name, monkeypatch)
  assert gin_config.unused_bindings() == []
