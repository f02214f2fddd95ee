"""Runs multi-device scripts in subprocesses (fake CPU devices must be set before jax loads).

`XLA_FLAGS=--xla_force_host_platform_device_count=N` only works if it is set before
jax is imported, so every multi-device check runs `python -m tests.distributed.worker`
(or a benchmark) in a fresh process, which prints one JSON line with its results.
"""
import json
import os
import socket
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def device_env(n_devices, **extra):
  """Environment for a CPU process with `n_devices` fake devices."""
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu',
             XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} "
                       f'--xla_force_host_platform_device_count={n_devices}'.strip())
  for key in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID'):
    env.pop(key, None)
  env.update({k: str(v) for k, v in extra.items()})
  return env


def run_worker(task, n_devices, *args, timeout=300):
  """Runs `worker.py task args` with n_devices CPU devices; returns its JSON result."""
  return run_command([sys.executable, '-m', 'tests.distributed.worker', task,
                      *map(str, args)], n_devices, timeout=timeout)


def run_command(command, n_devices, timeout=300, **env):
  out = subprocess.run(command, cwd=REPO, env=device_env(n_devices, **env), capture_output=True,
                       text=True, timeout=timeout, check=False)
  assert out.returncode == 0, f'{command} failed:\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}'
  return last_json(out.stdout)


def last_json(stdout):
  lines = [l for l in stdout.splitlines() if l.startswith('{')]
  assert lines, f'no JSON result in the output:\n{stdout[-3000:]}'
  return json.loads(lines[-1])


def free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]
