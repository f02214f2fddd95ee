"""plait-train as a command: lazy imports, configs by name, the saved effective config, and
user errors as one line with a documented exit code and no output directory left behind."""
import json
import os
import re
import subprocess
import sys

import gin
import pytest

from plait.supervised import gin_config
from plait.supervised import trainer
from tests.reliability import fixtures as rel_fixtures
from tests.supervised.test_trainer import TINY_GIN

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = ('jax', 'optax', 'orbax', 'numpy', 'plait.layers', 'plait.models', 'plait.data',
         'plait.supervised.training', 'plait.supervised.checkpoints', 'tensorflow')

# Runs a CLI module as `python -m` does, then prints its exit code and the heavy modules loaded.
_PROBE = """
import json, runpy, sys
module, heavy, sys.argv = sys.argv[1], sys.argv[2].split(','), sys.argv[2:]
try:
  runpy.run_module(module, run_name='__main__')
  code = 0
except SystemExit as e:
  code = e.code
print(json.dumps([code, [m for m in heavy if m in sys.modules]]))
"""


def _probe(module, *args, heavy=HEAVY):
  env = dict(os.environ, PYTHONPATH=REPO)
  out = subprocess.run([sys.executable, '-c', _PROBE, module, ','.join(heavy), *args],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                       check=False)
  code, loaded = json.loads(out.stdout.strip().splitlines()[-1])
  return code, loaded, out.stderr


@pytest.mark.parametrize('module', ['plait.supervised.trainer', 'plait.supervised.decode_cli'])
def test_help_imports_nothing_heavy(module):
  code, loaded, _ = _probe(module, '--help')
  assert code == 0 and loaded == [], loaded    # JAX alone takes ~1 s to import


@pytest.mark.parametrize('binding, message', [
    ('ReformerLM.d_model = (', 'is not valid gin: unexpected EOF'),   # was a tokenize traceback
    ('a b c', "is not valid gin: Couldn't parse statement"),
])
def test_a_gin_syntax_error_is_reported_before_jax_is_imported(binding, message, tmp_path):
  code, loaded, err = _probe('plait.supervised.trainer', '--config_file=reformer_duplication_tiny.gin',
                             f'--config={binding}', f'--output_dir={tmp_path / "run"}')
  assert code == 2 and loaded == [], loaded
  assert err.startswith(f'plait-train: bad config: --config={binding!r} {message}'), err
  assert len(err.strip().splitlines()) == 1 and not (tmp_path / 'run').exists()


def test_a_gin_typo_is_reported_before_the_loop_and_orbax_are_imported(tmp_path):
  code, loaded, err = _probe('plait.supervised.trainer', '--config_file=reformer_duplication_tiny.gin',
                             '--config=ReformerLM.d_modle = 3', f'--output_dir={tmp_path / "run"}',
                             heavy=('orbax', 'plait.supervised.training', 'tensorflow'))
  assert code == 2 and loaded == [], loaded
  assert "named 'd_modle'" in err and 'd_model' in err
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('name', ['reformer_duplication_tiny.gin', 'reformer_duplication_tiny'])
def test_shipped_configs_are_found_by_name_from_any_directory(name, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  try:
    trainer.parse_config([name], [])
    assert gin.query_parameter('ReformerLM.max_len') == 64
  finally:
    gin.clear_config()


def test_a_user_config_can_include_a_shipped_config_by_name(tmp_path, monkeypatch):
  (tmp_path / 'mine.gin').write_text("include 'reformer_duplication_tiny.gin'\n"
                                     'ReformerLM.n_layers = 2\n')
  monkeypatch.chdir(tmp_path)
  try:
    trainer.parse_config(['mine.gin'], [])
    assert gin.query_parameter('ReformerLM.n_layers') == 2
    assert gin.query_parameter('ReformerLM.max_len') == 64
  finally:
    gin.clear_config()


def test_a_config_file_not_found_lists_where_it_was_looked_for(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(gin_config.ConfigError, match=(
      f"'nope.gin' not found \\(looked for {tmp_path}/nope.gin, .*rl_free_configs/nope.gin\\); "
      'shipped configs: .*reformer_duplication_tiny')):
    trainer.parse_config(['nope.gin'], [])


def _with_cache(*args):
  """plait-train's arguments plus the session's compilation cache (conftest.py)."""
  import jax  # pylint: disable=import-outside-toplevel
  return [*args, f'--compilation_cache_dir={jax.config.jax_compilation_cache_dir}']


def _main(*args):
  """plait-train in-process, with gin cleared before and after."""
  gin.clear_config()
  try:
    return trainer.main(_with_cache(*args))
  finally:
    gin.clear_config()


def _quiet_tiny_config(tmp_path):
  """TINY_GIN without plots, progress or evaluation, written to tmp_path/tiny.gin."""
  config = tmp_path / 'tiny.gin'
  config.write_text(TINY_GIN + 'train.plot = False\nLoopSettings.progress = "none"\n'
                    'train.eval_inputs = None\n')
  return config


def _train_losses(run_dir):
  with open(run_dir / 'metrics.jsonl') as f:
    records = [json.loads(line) for line in f]
  return [(r['step'], r['loss']) for r in records if r.get('split') == 'train']


def test_saved_config_is_the_effective_config_and_reruns_the_run(tmp_path, capsys):
  config = _quiet_tiny_config(tmp_path)
  first, second = tmp_path / 'first', tmp_path / 'second'
  assert _main(f'--config_file={config}', '--config=tiny_lm.d_model = 8', '--steps=3',
               f'--output_dir={first}') == 0
  saved = (first / 'config.gin').read_text()
  assert 'train.steps = 3' in saved and 'tiny_lm.d_model = 8' in saved    # --steps, --config
  assert 'Adam.b1' not in saved and 'LoopSettings.seed' not in saved     # no unbound defaults
  assert _main(f'--config_file={first / "config.gin"}', f'--output_dir={second}') == 0
  assert (second / 'config.gin').read_text() == saved
  losses = _train_losses(first)
  assert [step for step, _ in losses] == [1, 2, 3]
  assert _train_losses(second) == losses
  capsys.readouterr()


def test_main_called_twice_in_one_process_starts_each_run_from_its_own_bindings(tmp_path):
  """A notebook calling plait-train's main twice: the first call's parsed (locked) config
  neither blocks the second ('Attempted to modify locked Gin config') nor leaks into it."""
  config = _quiet_tiny_config(tmp_path)
  gin.clear_config()
  try:   # main itself, twice: _main would clear between the calls
    assert trainer.main(_with_cache(f'--config_file={config}', '--config=tiny_lm.d_model = 8',
                                    '--steps=2', f'--output_dir={tmp_path / "first"}')) == 0
    assert trainer.main(_with_cache(f'--config_file={config}', '--steps=2',
                                    f'--output_dir={tmp_path / "second"}')) == 0
  finally:
    gin.clear_config()
  assert 'tiny_lm.d_model = 8' in (tmp_path / 'first' / 'config.gin').read_text()
  assert 'tiny_lm.d_model = 8' not in (tmp_path / 'second' / 'config.gin').read_text()


def test_recorded_config_names_only_what_was_bound():
  """A model using axial positions must not be recorded with `positional = 'sinusoidal'`."""
  try:
    trainer.parse_config(['reformer_crime_and_punishment_tiny.gin'], [])
    text = gin_config.effective_config()
  finally:
    gin.clear_config()
  assert 'ReformerLM.axial_pos_shape = (64, 128)' in text and 'positional' not in text


def test_a_run_saved_with_every_default_listed_resumes(tmp_path):
  """Older plait saved gin's operative config (defaults included): same values, same run."""
  import plait.configurables  # pylint: disable=import-outside-toplevel,unused-import
  (tmp_path / 'config.gin').write_text(
      'Adam.b1 = 0.9\nAdam.b2 = 0.999\ntrain.model = @plait.models.ReformerLM\n'
      'train.steps = 3\n')
  trainer.check_config(str(tmp_path), 'train.model = @ReformerLM\ntrain.steps = 9\n')
  with pytest.raises(trainer.ConfigMismatchError, match=r'-Adam.b2 = 0.999\n\+Adam.b2 = 0.99\n'):
    trainer.check_config(str(tmp_path), 'train.model = @ReformerLM\nAdam.b2 = 0.99\n')
  with pytest.raises(trainer.ConfigMismatchError, match=r'-Adam.b1 = 0.9\n\+Adam.b1 = 0.5\n'):
    (tmp_path / 'config.gin').write_text('train.model = @ReformerLM\n')   # saved by today's
    trainer.check_config(str(tmp_path), 'train.model = @ReformerLM\nAdam.b1 = 0.5\n')


class _Stop(Exception):
  pass


def test_gins_operative_config_of_a_run_equals_its_effective_config(monkeypatch):
  """What older plait saved (every default of every configurable called, scoped copies of
  unscoped bindings) compares equal to today's config.gin of the same run."""
  def stop(*args):
    del args
    raise _Stop()
  monkeypatch.setattr(trainer, '_build_parts', stop)   # train() is called, nothing built
  try:
    trainer.parse_config(['reformer_duplication_tiny.gin'], ['train.steps = 5'])
    for name in ('train.model', 'train.inputs', 'train.eval_inputs', 'train.optimizer',
                 'train.lr_schedule'):
      reference = gin.query_parameter(name)
      call = reference.scoped_configurable_fn
      call(mode='eval') if name == 'train.model' else call()
    with pytest.raises(_Stop):
      trainer.train('/nonexistent/never_made', settings=trainer.ConfiguredLoopSettings())
    operative, effective = gin.operative_config_str(), gin_config.effective_config()
  finally:
    gin.clear_config()
  assert 'eval/duplication_inputs.batch_size = 16' in operative and 'Adam.b1' in operative
  assert gin_config.differences(operative, effective) == []
  assert gin_config.differences(operative, effective.replace('batch_size = 16',
                                                             'batch_size = 8')) == [
      '-duplication_inputs.batch_size = 16', '+duplication_inputs.batch_size = 8',
      '-eval/duplication_inputs.batch_size = 16', '+eval/duplication_inputs.batch_size = 8']


DUPLICATION = '--config_file=reformer_duplication_tiny.gin'
# (arguments, exit code, message). Each fails before training: one line, no output_dir.
USER_ERRORS = {
    'heads_not_dividing_d_model': (
        [DUPLICATION, '--config=ReformerLM.n_heads = 3'], 2,
        'bad config: LSHSelfAttention <- ReformerLM: ValueError: LSHSelfAttention: d_model=64 '
        'is not divisible by n_heads=3'),
    'a_string_for_a_number': (
        [DUPLICATION, "--config=ReformerLM.d_model = 'abc'"], 2,
        "bad config: LSHSelfAttention <- ReformerLM: TypeError: '<' not supported"),
    'a_required_binding_left_unset': (
        [DUPLICATION, '--config=ReformerLM.vocab_size = %gin.REQUIRED'], 2,
        'bad config: ReformerLM.vocab_size set to `%gin.REQUIRED` but not subsequently overridden'),
    'no_config_file': (
        [], 2, 'bad config: no --config_file given and the bindings do not bind train.model or '
        'train.inputs .*shipped configs: .*reformer_duplication_tiny'),
    'a_bad_data_value': (
        [DUPLICATION, '--config=duplication_inputs.length = -3'], 2,
        'bad config: duplication_inputs: ValueError: duplication_inputs: length must be an even'),
    'missing_data_file': (
        ['--config=import tests.supervised.gin_fixtures', '--config=train.model = @tiny_lm',
         '--config=train.inputs = @file_tokens()'], 1,
        "train.inputs: \\[Errno 2\\] No such file or directory: '/nonexistent/tokens.npy'"),
}


@pytest.mark.parametrize('case', sorted(USER_ERRORS))
def test_a_user_error_is_one_line_and_leaves_no_output_dir(case, tmp_path, capsys):
  args, code, message = USER_ERRORS[case]
  run = tmp_path / 'run'
  assert _main(*args, f'--output_dir={run}') == code
  err = capsys.readouterr().err
  assert err.startswith('plait-train: ') and len(err.strip().splitlines()) == 1, err
  assert re.search(message, err), err
  assert not run.exists()


def test_a_failure_in_the_loops_checks_removes_the_output_dir_it_created(tmp_path, capsys):
  config = tmp_path / 'rel.gin'
  config.write_text(rel_fixtures.gin_text(steps=2, checkpoint_every=2))
  run = tmp_path / 'run'
  assert _main(f'--config_file={config}', "--config=rel_tokens.dtype = 'float32'",
               f'--output_dir={run}') == 1
  assert 'integer token ids' in capsys.readouterr().err
  assert not run.exists()


def test_debug_shows_the_traceback(tmp_path):
  with pytest.raises(gin_config.ConfigError, match='not divisible by n_heads=3'):
    _main(DUPLICATION, '--config=ReformerLM.n_heads = 3', '--debug',
          f'--output_dir={tmp_path / "run"}')
  assert not (tmp_path / 'run').exists()
