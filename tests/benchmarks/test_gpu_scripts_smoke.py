"""The GPU benchmark scripts still run (tiny sizes on CPU; numbers meaningless, no timing asserts)."""
import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / 'benchmarks'


def run(*args):
  out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stdout


def test_attention_gpu_script_runs_every_kind_on_cpu():
  out = run(str(BENCH / 'attention_gpu.py'), '--lengths', '512', '--causal', 'causal',
            '--kinds', 'xla', 'lsh', 'favor', 'block_sparse', '--budget_s', '0')
  for kind in ('xla', 'lsh', 'favor', 'block_sparse'):
    assert f'| causal | 512 | {kind} |' in out
  assert 'Error' not in out.split('| direction')[1], out


@pytest.mark.slow
@pytest.mark.parametrize('section', ['mfu', 'decode'])
def test_models_gpu_script_runs_tiny_on_cpu(section):
  out = run(str(BENCH / 'models_gpu.py'), section, '--tiny', '--reps', '1')
  assert '"error"' not in out, out
