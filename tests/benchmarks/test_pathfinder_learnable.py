"""benchmarks/pathfinder_learnable.py runs (tiny; the learning itself takes ~15 CPU minutes)."""
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / 'benchmarks' / 'pathfinder_learnable.py'


def test_pathfinder_learnable_script_trains_and_scores_on_cpu():
  out = subprocess.run([sys.executable, str(SCRIPT), '--train', '64', '--valid', '500',
                        '--steps', '2', '--every', '1', '--channels', '4', '--workers', '0'],
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  steps = [l for l in out.stdout.splitlines() if l.startswith('step ')]
  assert [l.split(':')[0] for l in steps] == ['step 1', 'step 2'], out.stdout
  assert all('validation' in l and '%' in l for l in steps), out.stdout
