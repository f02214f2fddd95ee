"""The benchmark scripts as a user runs them (a fresh Python each), or imported for their
functions, for tests/benchmarks."""
import importlib.util
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parents[2] / 'benchmarks'


def load_script(name):
  """benchmarks/`name` imported as a module (its sibling imports resolve, as when it runs)."""
  if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
  spec = importlib.util.spec_from_file_location(name.removesuffix('.py'), BENCH / name)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def run_script(name, *args, check=True, timeout=600):
  """Runs benchmarks/`name` with `args`; asserts exit 0 unless not `check`."""
  out = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True,
                       text=True, timeout=timeout)
  if check:
    assert out.returncode == 0, out.stderr[-3000:]
  return out


def lra(*args, check=True):
  """Runs lra.py with `args` (10-minute limit); asserts exit 0 unless not `check`."""
  return run_script('lra.py', *args, check=check)


def assert_scored_steps(stdout, scored, steps=2):
  """Asserts a training script printed `step 1:` ... `step <steps>:` lines, each with a
  `scored` accuracy in %."""
  lines = [l for l in stdout.splitlines() if l.startswith('step ')]
  assert [l.split(':')[0] for l in lines] == [f'step {k}' for k in range(1, steps + 1)], stdout
  assert all(scored in l and '%' in l for l in lines), stdout
