"""Bad inputs: a clear message, a non-zero exit code, and the previous run left untouched."""
import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest

from plait.supervised import checkpoints
from plait.supervised import run_lock
from tests.reliability import fixtures
from tests.reliability import kill_harness as kh


@pytest.fixture(scope='module')
def good_run(tmp_path_factory):
  """(config path, run dir): 2 steps trained with a checkpoint at step 2."""
  directory = tmp_path_factory.mktemp('good')
  config = directory / 'good.gin'
  config.write_text(fixtures.gin_text(steps=2, checkpoint_every=2) + "LoopSettings.progress = 'none'\n"
                    "train.eval_inputs = @eval/rel_tokens\ntrain.n_eval_batches = 1\n")
  run_dir = directory / 'run'
  assert fixtures.trainer_main([f'--config_file={config}', f'--output_dir={run_dir}']) == 0
  return str(config), str(directory / 'run')


def _snapshot(directory):
  """{file: (mtime, sha256)} of the run's files (not the lock, which names its last holder)."""
  out = {}
  for root, _, names in os.walk(directory):
    for name in names:
      if name == run_lock.LOCK_FILE:
        continue
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        out[os.path.relpath(path, directory)] = (os.stat(path).st_mtime_ns,
                                                 hashlib.sha256(f.read()).hexdigest())
  return out


# (extra CLI args, keep config.gin, exit code, message pattern). Cases that change the data or
# the model drop config.gin, so that the check under test is reached (not the config diff).
CASES = {
    'missing_gin_file': (['--config_file=/nonexistent/missing.gin'], True, 2,
                         'bad config: .*/nonexistent/missing.gin'),
    'unknown_configurable': (['--config=train.model = @rel_lmm'], True, 2,
                             "No configurable matching reference '@rel_lmm'.*close to 'rel_lmm': .*rel_lm"),
    'unknown_parameter': (['--config=rel_lm.d_modle = 8'], True, 2,
                          "named 'd_modle'.*d_model"),
    'changed_config': (['--config=rel_lm.d_model = 8'], True, 1,
                       'different config.*\\+rel_lm.d_model = 8.*--overwrite'),
    'wrong_model_for_checkpoint': (['--config=rel_lm.d_model = 8'], False, 1,
                                   'does not match.*Dense.*checkpoint \\[16, 16\\].*model '
                                   '\\[8, 8\\]'),
    'wrong_input_dtype': (["--config=rel_tokens.dtype = 'float32'"], False, 1,
                          'Embedding_32_16.*input shapes: float32\\[4, 8\\].*integer token ids'),
    'wrong_target_shape': (['--config=rel_tokens.target_length = 6'], False, 1,
                           'CrossEntropyLoss.*input shapes: .*float32\\[4, 8, 32\\].*int32\\[4, 6\\]'),
    'empty_train_data': (['--config=rel_tokens.n_batches = 0'], False, 1,
                         'train data is empty'),
    'empty_eval_data': (['--config=eval/rel_tokens.n_batches = 0'], False, 1,
                        'eval data is empty'),
    'tokenizer_larger_than_model': (['--config=rel_tokens.tokenizer_vocab = 64'], False, 1,
                                    'tokenizer has vocab_size 64 but .* embeds only 32 ids'),
    'token_ids_beyond_vocab': (['--config=rel_tokens.vocab = 64'], False, 1,
                               'batch of step \\d+ has ids in \\[\\d+, \\d+\\] in entry 0.*'
                               'token ids of the model .*must be in \\[0, 31\\]'),
    'non_finite_inputs': (['--config=rel_tokens.nan_at = 3', '--steps=4'], False, 1,
                          'loss is nan at step 3.*checkpoint \\(step 2\\) is kept.*non-finite '
                          'values in entry 2'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_bad_input_fails_clearly_and_changes_nothing(case, good_run, tmp_path, capsys):
  config, run = good_run
  extra, keep_config, code, pattern = CASES[case]
  directory = str(tmp_path / 'run')
  shutil.copytree(run, directory)
  if not keep_config:
    os.remove(os.path.join(directory, 'config.gin'))
  before = _snapshot(directory)
  capsys.readouterr()
  args = [f'--config_file={config}', f'--output_dir={directory}', *extra]
  assert fixtures.trainer_main(args) == code
  err = capsys.readouterr().err
  if not keep_config:   # first the warning that nothing can check the config, then the error
    warning, err = err.split('\n', 1)
    assert 'holds checkpoints but no config.gin' in warning, warning
  assert err.startswith('plait-train: ')
  assert re.search(pattern, err, flags=re.DOTALL), err
  after = _snapshot(directory)
  for name, stamp in before.items():
    if name == 'metrics.jsonl':  # a diverged run appends its last record, keeps the rest
      with open(os.path.join(directory, name)) as f:
        assert f.read().startswith(open(os.path.join(run, name)).read())
    else:
      assert after.get(name) == stamp, name
  assert checkpoints.has_checkpoint(directory)
  assert kh.complete_steps(directory) == [2]


def test_cli_exit_code_of_a_missing_gin_file(tmp_path):
  done = subprocess.run(kh.command('/nonexistent/missing.gin', str(tmp_path / 'run')),
                        cwd=kh.REPO, env=kh.environment(), capture_output=True, text=True,
                        timeout=300, check=False)
  assert done.returncode == 2 and 'missing.gin' in done.stderr
  assert not os.path.exists(tmp_path / 'run')


def test_decode_without_checkpoint_says_train_first(tmp_path):
  with pytest.raises(checkpoints.CheckpointError, match='no complete checkpoint.*train first'):
    checkpoints.restore_model(str(tmp_path), fixtures.rel_lm(),
                              fixtures.Tokens().__next__()[0])
  assert not os.path.exists(tmp_path / 'checkpoints')


def test_decode_cli_without_checkpoint(good_run, tmp_path, capsys):
  decode_cli = pytest.importorskip('plait.supervised.decode_cli')
  shutil.copy(os.path.join(good_run[1], 'config.gin'), tmp_path)  # a run dir, no checkpoint
  with pytest.raises(BaseException) as failure:  # an error or SystemExit with a non-zero code
    code = decode_cli.main([f'--output_dir={tmp_path}', '--prompt=Raskolnikov'])
    raise SystemExit(code)
  assert failure.value.args and failure.value.args[0] not in (0, None)
  text = str(failure.value) + capsys.readouterr().err
  assert re.search('no (complete )?checkpoint in .*train first', text), text
