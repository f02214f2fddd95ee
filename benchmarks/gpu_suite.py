"""The GPU suite in one command: run it on a GPU machine before calling a change to
plait/layers, plait/models or plait/supervised done, and record its summary in RESULTS.md.

  PLAIT_DATA_DIR=<dir with crime_and_punishment.txt> python benchmarks/gpu_suite.py --out runs/gpu

1. `pytest -m gpu tests/gpu`: every full config in plait/rl_free_configs, not shrunk, through
   plait-train (a few hundred steps, evaluation, checkpoints, kill -9, resume) and plait-decode
   from the best checkpoint; configs run side by side (--workers processes on the one GPU).
2. The GPU-only paths under the ordinary tests, now on the GPU: the Pallas decode kernel and
   the cuDNN attention (tests/layers/attention/test_decode_kernel.py, test_dense.py), buffer
   donation in the Loop (tests/supervised/test_loop.py), bf16 (the configs' compute dtype).
3. benchmarks/gpu_checks.py: cuDNN flash attention vs XLA vs float32, at real lengths.

Writes --out/summary.md (date, GPU, each part's result, per-config compile times and held-out
losses) and the logs beside it; exits non-zero if any part failed.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_PATH_TESTS = ['tests/layers/attention/test_decode_kernel.py',
                  'tests/layers/attention/test_dense.py', 'tests/supervised/test_loop.py']


def _run(name, argv, out, env):
  log = os.path.join(out, f'{name}.log')
  print(f'== {name}: {" ".join(argv)}', flush=True)
  with open(log, 'w') as f:
    code = subprocess.run(argv, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                          check=False).returncode
  with open(log) as f:
    tail = f.read().strip().splitlines()[-1:] or ['']
  print(f'   exit {code}: {tail[0]}', flush=True)
  return code, tail[0]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--out', default='runs/gpu_suite')
  p.add_argument('--workers', type=int, default=3, help='configs trained side by side')
  p.add_argument('--steps_scale', default='1', help='scales the configs\' step counts')
  args = p.parse_args(argv)
  out = os.path.abspath(args.out)
  os.makedirs(out, exist_ok=True)
  rows_path = os.path.join(out, 'configs.jsonl')
  if os.path.exists(rows_path):
    os.remove(rows_path)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]),
             XLA_PYTHON_CLIENT_PREALLOCATE='false', PLAIT_GPU_SUITE_OUT=rows_path,
             PLAIT_GPU_SUITE_STEPS=args.steps_scale)
  pytest = [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-q']
  parts = [
      ('full_configs', pytest + ['-m', 'gpu', '-n', str(args.workers), '--dist', 'load',
                                 'tests/gpu']),
      ('gpu_paths', pytest + ['-m', 'not slow', '-n', '0', *GPU_PATH_TESTS]),
      ('cudnn_checks', [sys.executable, 'benchmarks/gpu_checks.py']),
  ]
  results = [(name, *_run(name, part, out, env)) for name, part in parts]
  import jax  # pylint: disable=import-outside-toplevel
  lines = [f'GPU suite, {datetime.date.today()}, {jax.devices()[0].device_kind}, '
           f'jax {jax.__version__}', '', '| part | exit | last line |', '| --- | --- | --- |']
  lines += [f'| {n} | {c} | {t} |' for n, c, t in results]
  if os.path.exists(rows_path):
    lines += ['', '| config | steps | compile train / eval step (s) | resumed: train step (s) | '
              'held-out loss by step | wall (s) |', '| --- | --- | --- | --- | --- | --- |']
    with open(rows_path) as f:
      for row in sorted((json.loads(l) for l in f), key=lambda r: r['config']):
        c, r = row['compile_s'], row['compile_resumed_s']
        losses = ', '.join(f'{s}: {v:.3f}' for s, v in sorted(row['eval_loss'].items(),
                                                                 key=lambda kv: int(kv[0])))
        lines.append(f"| {row['config']} | {row['steps']} | {c.get('train step')} / "
                     f"{c.get('eval step')} | {r.get('train step')} | {losses} | "
                     f"{row['wall_s']} |")
  text = '\n'.join(lines) + '\n'
  with open(os.path.join(out, 'summary.md'), 'w') as f:
    f.write(text)
  print(text)
  return 1 if any(code for _, code, _ in results) else 0


if __name__ == '__main__':
  sys.exit(main())
