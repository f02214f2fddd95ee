"""lra.py --test_examples: the best checkpoint also scored on a longer test stream that starts
with the test split (a tighter estimate of the same accuracy)."""
import json

import pytest

from tests.benchmarks.scripts import lra

SPLIT = 'eval/lra_listops_inputs.n_examples = 16'   # the validation and test splits: 16 each


def test_the_stream_scores_the_split_as_its_start_and_is_footnoted(tmp_path):
  """The split's accuracy from the stream's pass equals the split scored alone (same
  checkpoint, resumed from --runs_dir), and the stream's own accuracy is kept and footnoted."""
  common = ['--smoke', '--accuracy_only', '--models', 'transformer', '--steps', '4',
            '--runs_dir', str(tmp_path / 'runs'), '--config', SPLIT]
  out = lra(*common, '--test_examples', '200', '--out', str(tmp_path / 'a')).stdout
  alone = lra(*common, '--test_batches', '2', '--out', str(tmp_path / 'b'))   # 2 x 8 = 16
  row_a, row_b = (json.loads((tmp_path / d / 'lra.json').read_text())['accuracy'][0]
                  for d in ('a', 'b'))
  assert row_a['test'] == row_b['test'] and 'test_stream' not in row_b, (row_a, row_b, alone)
  stream = row_a['test_stream']
  assert (stream['examples'], stream['split_examples']) == (200, 16), stream
  assert stream['test'] != row_a['test'], (row_a, '200 examples scored as the split')
  assert (f'transformer on listops: {stream["test"]:.2f} on examples 0-199 of the test stream '
          '(the split is its first 16)') in out, out


@pytest.mark.parametrize('args, message', [
    (['--test_examples', '100', '--test_batches', '2'], 'not with --test_batches'),
    (['--test_examples', '0'], 'give a positive N'),
    (['--test_examples', '100', '--tasks', 'listops', 'text'],
     'only generated tasks have a test stream')])
def test_bad_test_examples_are_usage_errors(args, message, tmp_path):
  out = lra('--smoke', *args, '--out', str(tmp_path), check=False)
  assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]


def test_a_stream_shorter_than_the_split_is_one_message(tmp_path):
  out = lra('--smoke', '--accuracy_only', '--models', 'transformer', '--steps', '1',
            '--config', SPLIT, '--test_examples', '10', '--out', str(tmp_path), check=False)
  assert out.returncode == 1 and 'Traceback' not in out.stderr, out.stderr[-2000:]
  assert ("--test_examples 10 is fewer than the listops test split's 16 examples"
          in out.stderr), out.stderr[-2000:]
