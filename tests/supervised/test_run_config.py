"""A run's config.gin saved by an earlier plait version resumes and decodes in today's names."""
import gin
import pytest

from plait.supervised import decode_cli, run_config, trainer
from tests.supervised.test_trainer import TINY_GIN


def test_upgrade_moves_loop_settings_and_renames_configurables_only_where_they_are_names():
  old = ('train.checkpoint_every = 100\ntrain.steps = 5\ntrain.compute_dtype = "bfloat16"\n'
         'Favor.nb_features = 64\nPerformerLM.attention_type = @CausalFavor\n'
         "x.name = 'Favor'\nFavorAttention.y = 1\n")
  new, changes = run_config.upgrade(old)
  assert new == ('LoopSettings.checkpoint_every = 100\ntrain.steps = 5\n'
                 'LoopSettings.compute_dtype = "bfloat16"\nFavorAttention.nb_features = 64\n'
                 "PerformerLM.attention_type = @CausalFavorAttention\nx.name = 'Favor'\n"
                 'FavorAttention.y = 1\n')
  assert changes == ['CausalFavor -> CausalFavorAttention', 'Favor -> FavorAttention',
                     'train.checkpoint_every -> LoopSettings.checkpoint_every',
                     'train.compute_dtype -> LoopSettings.compute_dtype']
  assert run_config.upgrade(new) == (new, [])   # today's names are left alone


def _train(output_dir, steps):
  gin.clear_config()
  trainer.parse_config([], [TINY_GIN, "LoopSettings.progress = 'none'"])
  try:
    return trainer.train(str(output_dir), steps=steps, plot=False)
  finally:
    gin.clear_config()


def test_a_run_saved_with_the_old_train_bindings_resumes_and_decodes(tmp_path):
  _train(tmp_path, steps=2)
  path = tmp_path / run_config.CONFIG_FILE
  saved = path.read_text()
  assert 'LoopSettings.checkpoint_every = 2' in saved
  path.write_text(saved.replace('LoopSettings.', 'train.'))    # as plait wrote it before
  assert _train(tmp_path, steps=4).step == 4                     # not "a different config"
  path.write_text(saved.replace('LoopSettings.', 'train.'))
  model_fn = decode_cli.load_model_factory(str(tmp_path))        # was: no parameter 'checkpoint_every'
  assert model_fn(mode='predict').name == 'Serial'
  gin.clear_config()


def test_an_old_name_in_a_users_config_file_is_a_config_error_naming_the_new_one():
  with pytest.raises(ValueError, match="(?s)named 'checkpoint_every'.*"
                                       'train.checkpoint_every is now LoopSettings.checkpoint_every'):
    trainer.parse_config([], ['train.checkpoint_every = 2'])
  gin.clear_config()
  with pytest.raises(ValueError, match='(?s)Favor.* is now FavorAttention'):
    trainer.parse_config([], ['Favor.nb_features = 2'])
  gin.clear_config()


@pytest.mark.parametrize('junk', [b'\xa0\xff\xfe not text', b'train.steps = [1, 2\n',
                                  b'a.b = 1\n\x00\x01 = =\n'])
def test_a_damaged_config_gin_is_named_as_damaged_not_as_a_different_config(tmp_path, junk,
                                                                           capsys):
  _train(tmp_path, steps=2)
  (tmp_path / run_config.CONFIG_FILE).write_bytes(junk)
  before = sorted(p.name for p in tmp_path.rglob('*'))
  with pytest.raises(run_config.DamagedConfigError, match='config.gin is damaged .*mv .*'
                                                          'config.gin.damaged'):
    _train(tmp_path, steps=4)
  assert sorted(p.name for p in tmp_path.rglob('*')) == before   # nothing changed
  assert decode_cli.main([f'--output_dir={tmp_path}']) == 1
  assert 'config.gin is damaged' in capsys.readouterr().err
  (tmp_path / run_config.CONFIG_FILE).rename(tmp_path / 'config.gin.damaged')
  assert _train(tmp_path, steps=4).step == 4                      # the advice works
  assert 'holds checkpoints but no config.gin' in capsys.readouterr().err   # and is told
