"""lra.py --variant: named sets of bindings, each trained as its own run, row and table line."""
import json

import pytest

from tests.benchmarks.scripts import lra

VARIANTS = ['--variant', 'lr5e-4', 'multifactor.constant = 0.0005',
            '--variant', 'b4', 'lra_listops_inputs.batch_size = 4']


def _check_runs(out_dir, stdout, runs='runs'):
  rows = json.loads((out_dir / 'lra.json').read_text())['accuracy']
  assert [(r['variant'], r['bindings']) for r in rows] == [
      ('lr5e-4', ['multifactor.constant = 0.0005']),
      ('b4', ['lra_listops_inputs.batch_size = 4'])], rows
  for name, binding, other in (('lr5e-4', 'multifactor.constant = 0.0005', 'batch_size = 4'),
                               ('b4', 'lra_listops_inputs.batch_size = 4', '0.0005')):
    config = (out_dir / runs / f'lra_listops_transformer_tiny@{name}' / 'config.gin').read_text()
    assert binding in config and other not in config, config
  assert '| transformer (lr5e-4) | ' in stdout and '| transformer (b4) | ' in stdout, stdout
  assert 'transformer (b4) on listops: trained with lra_listops_inputs.batch_size = 4' in stdout


def test_each_variant_is_its_own_run_row_and_table_line(tmp_path):
  out = lra('--smoke', '--accuracy_only', '--models', 'transformer', *VARIANTS,
            '--out', str(tmp_path)).stdout
  _check_runs(tmp_path, out)


@pytest.mark.slow
def test_variants_train_side_by_side_with_jobs(tmp_path):
  out = lra('--smoke', '--accuracy_only', '--models', 'transformer', '--jobs', '2', *VARIANTS,
            '--memory_fraction', '0.5', '--out', str(tmp_path),
            '--runs_dir', str(tmp_path / 'kept')).stdout
  _check_runs(tmp_path, out, runs='kept')
  assert (tmp_path / 'jobs' / 'listops_transformer@b4.log').exists()


@pytest.mark.parametrize('args, message', [
    (['--variant', 'a/b', 'train.steps = 1'], "'a/b' is not a new name"),
    (['--variant', 'a', 'train.steps = 1', '--variant', 'a', 'train.steps = 2'],
     "'a' is not a new name"),
    (['--variant', 'a'], 'give at least one gin binding after the name'),
    (['--jobs', '2', '--memory_fraction', '0'], '--memory_fraction must be in (0, 1], got 0.0')])
def test_a_bad_variant_is_a_usage_error(args, message, tmp_path):
  out = lra('--smoke', *args, '--out', str(tmp_path), check=False)
  assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]


def test_encoder_in_a_binding_is_each_models_own_encoder(tmp_path):
  """One variant spans the Transformer and the Performer: `{encoder}` is spelled per model in
  its run's config.gin and row."""
  lra('--smoke', '--accuracy_only', '--models', 'transformer', 'performer', '--variant', 'oct',
      "{encoder}.positional = 'octave'", '--out', str(tmp_path))
  rows = json.loads((tmp_path / 'lra.json').read_text())['accuracy']
  assert {r['model']: r['bindings'] for r in rows} == {
      'transformer': ["TransformerEncoder.positional = 'octave'"],
      'performer': ["PerformerEncoder.positional = 'octave'"]}, rows
  for model, encoder in (('transformer', 'TransformerEncoder'), ('performer', 'PerformerEncoder')):
    config = (tmp_path / 'runs' / f'lra_listops_{model}_tiny@oct' / 'config.gin').read_text()
    assert f"{encoder}.positional = 'octave'" in config, config


@pytest.mark.slow
def test_a_failed_job_is_footnoted_with_its_error_and_the_script_exits_1(tmp_path):
  out = lra('--smoke', '--accuracy_only', '--models', 'transformer', '--jobs', '2',
            '--variant', 'ok', 'multifactor.constant = 0.0005',
            '--variant', 'bad', '{encoder}.no_such_argument = 1', '--out', str(tmp_path),
            check=False)
  assert out.returncode == 1, out.stderr[-3000:]
  assert 'lra.py: 1 training run(s) failed' in out.stderr and 'listops transformer (bad)' in (
      out.stderr), out.stderr[-3000:]
  rows = {r['variant']: r for r in json.loads((tmp_path / 'lra.json').read_text())['accuracy']}
  assert 'error' not in rows['ok'] and rows['ok']['test'] is not None, rows
  error = rows['bad']['error']
  assert error.startswith('exit 1: lra.py: lra_listops_transformer_tiny with '
                          "['TransformerEncoder.no_such_argument = 1']"), error
  table = (tmp_path / 'lra.md').read_text()
  assert '| transformer (bad) | — [' in table, table
  assert 'transformer (bad) on listops: failed, exit 1' in table, table
