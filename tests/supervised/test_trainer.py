"""The gin trainer: typo hints, config refusal/--overwrite, registry, CLI end to end."""
import os
import subprocess
import sys

import gin
import pytest

from plait.supervised import trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY_GIN = """
import tests.supervised.gin_fixtures
train.model = @tiny_lm
tiny_lm.d_model = 16
train.inputs = @random_tokens
train.eval_inputs = @random_tokens
train.optimizer = @Adam
Adam.clip_gradient_norm = 1.0
train.lr_schedule = @warmup
warmup.n_warmup_steps = 2
warmup.max_value = 0.01
train.steps = 4
LoopSettings.checkpoint_every = 2
train.n_eval_batches = 1
LoopSettings.progress = 'lines'
LoopSettings.log_every = 1
"""


@pytest.mark.parametrize('binding, close', [
    ('Adma.b1 = 0.9', "No configurable matching 'Adma'.*close to 'Adma': .*Adam"),
    ('Adam.lerning_rate = 0.1', "named 'lerning_rate'.*close to 'lerning_rate': learning_rate"),
])
def test_typo_binding_gives_gin_error_and_close_names(binding, close):
  try:
    with pytest.raises(ValueError, match=f'(?s){close}'):
      trainer.parse_config([], [binding])
  finally:
    gin.clear_config()


def test_different_config_is_refused_unless_overwrite(tmp_path):
  trainer.check_config(str(tmp_path), 'train.steps = 5\nAdam.b1 = 0.9\n')  # fresh dir: fine
  (tmp_path / 'config.gin').write_text('# old\ntrain.steps = 3\nAdam.b1 = 0.9\n')
  trainer.check_config(str(tmp_path), 'train.steps = 5\nAdam.b1 = 0.9\n')  # only steps differ
  with pytest.raises(trainer.ConfigMismatchError, match=r'(?s)-Adam.b1 = 0.9.*\+Adam.b1 = 0.8'
                                                        '.*--overwrite'):
    trainer.check_config(str(tmp_path), 'Adam.b1 = 0.8\n')
  (tmp_path / 'checkpoints' / '2').mkdir(parents=True)
  (tmp_path / 'metrics.jsonl').write_text('{}\n')
  (tmp_path / 'notes.txt').write_text('mine')
  trainer.check_config(str(tmp_path), 'Adam.b1 = 0.8\n', overwrite=True)
  assert sorted(os.listdir(tmp_path)) == ['notes.txt']


def test_checkpoints_without_config_gin_resume_with_a_warning(tmp_path, capsys):
  """Nothing says what trained them, so nothing can be compared: say so, do not refuse (a
  damaged config.gin's documented recovery moves it aside and resumes)."""
  trainer.check_config(str(tmp_path), 'train.steps = 5\n')               # fresh: silent
  (tmp_path / 'checkpoints' / '2' / 'meta').mkdir(parents=True)          # an unfinished save
  trainer.check_config(str(tmp_path), 'train.steps = 5\n')
  assert capsys.readouterr().err == ''
  (tmp_path / 'checkpoints' / '2' / 'meta' / 'metadata').write_text('{}')  # a complete one
  trainer.check_config(str(tmp_path), 'train.steps = 5\n')
  err = capsys.readouterr().err
  assert f'warning: {tmp_path} holds checkpoints but no config.gin' in err, err
  assert '--overwrite' in err, err
  (tmp_path / 'config.gin').write_text('train.steps = 5\n')
  trainer.check_config(str(tmp_path), 'train.steps = 5\n')               # recorded: silent
  assert capsys.readouterr().err == ''


def test_configurables_are_idempotent_and_not_imported_by_plait():
  code = ('import sys, importlib, plait, plait.layers\n'
          'assert "plait.configurables" not in sys.modules\n'
          'import plait.configurables as c\n'
          'assert c.register_all() == 0\n'
          'importlib.reload(c)\n'
          'import gin\n'
          'gin.parse_config("Dense.n_units = 3\\nAdam.b1 = 0.5\\nmultifactor.constant = 2.0")\n'
          'print("ok")\n')
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                       timeout=120, check=False)
  assert out.returncode == 0 and 'ok' in out.stdout, out.stderr


def _train_cli(*args):
  env = dict(os.environ, PYTHONPATH=REPO)
  return subprocess.run([sys.executable, '-m', 'plait.supervised.trainer', *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
  config = tmp_path / 'tiny.gin'
  config.write_text(TINY_GIN)
  out_dir = tmp_path / 'run'
  run = _train_cli(f'--config_file={config}', f'--output_dir={out_dir}')
  assert run.returncode == 0, run.stderr
  assert 'step 4:' in run.stdout and 'eval:' in run.stdout
  assert 'tiny_lm.d_model = 16' in (out_dir / 'config.gin').read_text()
  assert sorted(os.listdir(out_dir / 'checkpoints')) == ['2', '4']
  assert (out_dir / 'loss.png').exists() and (out_dir / 'metrics.jsonl').exists()
  # More steps with the same config resumes.
  more = _train_cli(f'--config_file={config}', f'--output_dir={out_dir}', '--steps=6')
  assert more.returncode == 0 and 'Resumed from the checkpoint at step 4' in more.stdout
  # A changed config is refused, then accepted with --overwrite.
  changed = _train_cli(f'--config_file={config}', '--config=tiny_lm.d_model = 8',
                       f'--output_dir={out_dir}')
  assert changed.returncode == 1 and 'different config' in changed.stderr
  assert '+tiny_lm.d_model = 8' in changed.stderr
  fresh = _train_cli(f'--config_file={config}', '--config=tiny_lm.d_model = 8',
                     f'--output_dir={out_dir}', '--overwrite', '--steps=2')
  assert fresh.returncode == 0, fresh.stderr
  assert sorted(os.listdir(out_dir / 'checkpoints')) == ['2']
  # A typo'd binding: the gin error and the close names, exit code 2.
  typo = _train_cli(f'--config_file={config}', '--config=tiny_lm.d_modle = 8',
                    f'--output_dir={tmp_path / "typo"}')
  assert typo.returncode == 2
  assert "doesn't have a parameter named 'd_modle'" in typo.stderr and 'd_model' in typo.stderr


@pytest.mark.parametrize('content, expected', [
    (b'', 'does not bind train.model or train.inputs'),
    (b'train.steps = 3\n\xa0\xff\xfe junk', 'is not a gin config (not UTF-8 text'),
])
def test_an_empty_or_binary_config_file_is_one_line_exit_2_and_no_output_dir(
    tmp_path, capsys, content, expected):
  config = tmp_path / 'bad.gin'
  config.write_bytes(content)
  try:
    assert trainer.main([f'--config_file={config}', f'--output_dir={tmp_path / "run"}']) == 2
  finally:
    gin.clear_config()
  err = capsys.readouterr().err
  assert err.startswith('plait-train: bad config: ') and expected in err
  if content:
    assert str(config) in err
  assert len(err.strip().splitlines()) == 1 and not (tmp_path / 'run').exists()


def test_negative_steps_is_a_usage_error(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    trainer.main(['--config_file=x.gin', f'--output_dir={tmp_path / "run"}', '--steps=-5'])
  assert exit_info.value.code == 2
  assert "--steps: expected a whole number >= 0, got '-5'" in capsys.readouterr().err
  assert not (tmp_path / 'run').exists()


def test_an_output_dir_that_cannot_be_made_is_one_line_exit_1(tmp_path, capsys):
  config = tmp_path / 'tiny.gin'
  config.write_text(TINY_GIN)
  (tmp_path / 'a_file').write_text('not a directory')
  try:
    code = trainer.main([f'--config_file={config}', f'--output_dir={tmp_path}/a_file/run',
                         '--compilation_cache_dir=none'])
  finally:
    gin.clear_config()
  err = capsys.readouterr().err
  assert code == 1 and err.count('\n') == 1, err     # was a 30-line traceback
  assert err.startswith('plait-train: [Errno 20] Not a directory:') and 'a_file/run' in err
