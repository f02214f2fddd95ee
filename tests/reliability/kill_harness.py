"""Runs the trainer CLI in a subprocess and SIGKILLs it at a chosen moment."""
import json
import os
import signal
import subprocess
import sys
import time

from tests.reliability import fixtures

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TMP_MARK = '.orbax-checkpoint-tmp'


def write_config(directory, steps, checkpoint_every):
  path = os.path.join(directory, 'kill.gin')
  with open(path, 'w') as f:
    f.write(fixtures.gin_text(steps=steps, checkpoint_every=checkpoint_every))
  return path


def command(config, output_dir, *extra):
  return [sys.executable, '-m', 'plait.supervised.trainer', f'--config_file={config}',
          f'--output_dir={output_dir}', *extra]


def environment():
  return dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')


def start(config, output_dir):
  return subprocess.Popen(command(config, output_dir), cwd=REPO, env=environment(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(config, output_dir, timeout=300):
  """Runs the CLI to completion; returns its output (asserting exit code 0)."""
  done = subprocess.run(command(config, output_dir), cwd=REPO, env=environment(),
                        capture_output=True, text=True, timeout=timeout, check=False)
  assert done.returncode == 0, done.stdout + done.stderr
  return done.stdout


def train_losses(output_dir):
  """{step: loss} of the train records in output_dir/metrics.jsonl (last record wins)."""
  path = os.path.join(output_dir, 'metrics.jsonl')
  losses = {}
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        if line.strip():
          try:
            r = json.loads(line)
          except ValueError:
            continue  # a line being written right now
          if r.get('split') == 'train':
            losses[r['step']] = r['loss']
  return losses


def checkpoint_entries(output_dir):
  directory = os.path.join(output_dir, 'checkpoints')
  return os.listdir(directory) if os.path.isdir(directory) else []


def complete_steps(output_dir):
  return sorted(int(e) for e in checkpoint_entries(output_dir) if e.isdigit())


def kill_when(process, predicate, timeout=240):
  """Polls `predicate()` and SIGKILLs `process` as soon as it holds; returns True if killed."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if predicate():
      os.kill(process.pid, signal.SIGKILL)
      process.wait()
      return True
    if process.poll() is not None:
      return False
    time.sleep(0.0002)
  process.kill()
  process.wait()
  raise TimeoutError('the trainer neither reached the kill point nor exited')


def after_step(output_dir, step):
  return lambda: max(train_losses(output_dir), default=0) >= step


def while_writing(output_dir, step):
  """True while orbax's temporary directory for checkpoint `step` exists."""
  prefix = f'{step}{TMP_MARK}'
  return lambda: any(e.startswith(prefix) for e in checkpoint_entries(output_dir))
