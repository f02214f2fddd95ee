"""The persistent compilation cache that plait-train and plait-decode turn on."""
import gin
import jax
import pytest

from plait.supervised import compilation_cache, trainer
import tests.supervised.gin_fixtures  # noqa: F401  (registered before any test locks gin)


@pytest.fixture(autouse=True)
def _restore_jax_config():
  keys = ('jax_enable_compilation_cache', 'jax_compilation_cache_dir',
          'jax_persistent_cache_min_compile_time_secs')
  old = {k: getattr(jax.config, k) for k in keys}
  yield
  for k, v in old.items():
    jax.config.update(k, v)


def test_enable_uses_the_given_then_the_environment_then_plait_cache_dir(tmp_path, monkeypatch):
  assert compilation_cache.enable(tmp_path / 'a') == str(tmp_path / 'a')
  assert jax.config.jax_compilation_cache_dir == str(tmp_path / 'a')
  assert jax.config.jax_enable_compilation_cache
  monkeypatch.setenv('PLAIT_COMPILATION_CACHE', str(tmp_path / 'b'))
  assert compilation_cache.enable() == str(tmp_path / 'b')
  monkeypatch.delenv('PLAIT_COMPILATION_CACHE')
  monkeypatch.setenv('PLAIT_CACHE_DIR', str(tmp_path / 'c'))
  assert compilation_cache.enable() == str(tmp_path / 'c' / 'xla')
  assert (tmp_path / 'c' / 'xla').is_dir()


def test_none_turns_it_off(tmp_path):
  compilation_cache.enable(tmp_path)
  assert compilation_cache.enable('none') is None
  assert not jax.config.jax_enable_compilation_cache


def test_compiled_programs_are_written_there_even_after_another_directory(tmp_path):
  compilation_cache.enable(tmp_path / 'first')
  jax.jit(lambda x: x - 2)(jax.numpy.arange(5.0)).block_until_ready()
  compilation_cache.enable(tmp_path)
  jax.jit(lambda x: x * 3 + 1)(jax.numpy.arange(7.0)).block_until_ready()
  assert [p for p in tmp_path.iterdir() if p.name != 'first']


def test_an_unwritable_directory_is_one_clear_error_and_exit_2(tmp_path, capsys):
  blocker = tmp_path / 'file'
  blocker.write_text('not a directory')
  with pytest.raises(OSError, match="cannot be created.*'none'"):
    compilation_cache.enable(blocker / 'xla')
  config = tmp_path / 'tiny.gin'   # the config is read first: a valid one
  config.write_text('import tests.supervised.gin_fixtures\ntrain.model = @tiny_lm\n'
                    'train.inputs = @random_tokens\n')
  gin.clear_config()   # whatever an earlier test in this process left
  try:
    code = trainer.main([f'--config_file={config}', f'--compilation_cache_dir={blocker / "xla"}',
                         f'--output_dir={tmp_path / "run"}'])
  finally:
    gin.clear_config()
  assert code == 2
  assert 'compilation cache directory' in capsys.readouterr().err
  assert not (tmp_path / 'run').exists()
