"""benchmarks/lra.py as a user runs it, for the lra.py tests."""
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parents[2] / 'benchmarks'


def lra(*args, check=True):
  """Runs lra.py with `args` (10-minute limit); asserts exit 0 unless not `check`."""
  out = subprocess.run([sys.executable, str(BENCH / 'lra.py'), *args], capture_output=True,
                       text=True, timeout=600)
  if check:
    assert out.returncode == 0, out.stderr[-3000:]
  return out
