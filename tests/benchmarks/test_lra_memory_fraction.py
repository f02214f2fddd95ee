"""lra.py --memory_fraction: the runs' share of the GPU's memory, with --jobs or without."""
import os
import subprocess
import sys

import pytest

from tests.benchmarks.scripts import BENCH, load_script


@pytest.mark.parametrize('env, args, message', [
    ('0.3', ['--memory_fraction', '0.5'],
     '--memory_fraction 0.5 and XLA_PYTHON_CLIENT_MEM_FRACTION=0.3 disagree'),
    ('most', [], "XLA_PYTHON_CLIENT_MEM_FRACTION='most' is not a number"),
    ('1.5', [], '--memory_fraction must be in (0, 1], got 1.5')])
def test_a_memory_fraction_at_odds_with_the_environment_is_a_usage_error(env, args, message,
                                                                           tmp_path):
  out = subprocess.run([sys.executable, str(BENCH / 'lra.py'), '--smoke', *args, '--out',
                        str(tmp_path)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, XLA_PYTHON_CLIENT_MEM_FRACTION=env), check=False)
  assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]


def test_memory_fraction_is_this_processs_share_without_jobs(monkeypatch):
  """Without --jobs the flag sets the process's own share (it had applied to --jobs only, so
  a second lra.py beside one given 0.6 found JAX's default 0.75 taken); with the environment
  variable alone, that is the runs' share; neither: nothing is set (JAX's default)."""
  script = load_script('lra.py')
  # A copy of the environment for this test alone: apply_memory_fraction writes into it.
  monkeypatch.setattr(os, 'environ', {k: v for k, v in os.environ.items()
                                      if k != 'XLA_PYTHON_CLIENT_MEM_FRACTION'})
  assert script.parse_args(['--smoke', '--out', 'x']).memory_fraction is None
  script.apply_memory_fraction(None)
  assert 'XLA_PYTHON_CLIENT_MEM_FRACTION' not in os.environ
  given = script.parse_args(['--smoke', '--out', 'x', '--memory_fraction', '0.6'])
  script.apply_memory_fraction(given.memory_fraction)
  assert os.environ['XLA_PYTHON_CLIENT_MEM_FRACTION'] == '0.6'
  os.environ['XLA_PYTHON_CLIENT_MEM_FRACTION'] = '0.3'
  assert script.parse_args(['--smoke', '--out', 'x', '--jobs', '2']).memory_fraction == 0.3
