"""The GPU suite in one command: run it on a GPU machine before calling a change to
plait/layers, plait/models or plait/supervised done, and record its summary in RESULTS.md.

  PLAIT_DATA_DIR=<dir with crime_and_punishment.txt> python benchmarks/gpu_suite.py --out runs/gpu

1. `pytest -m gpu tests/gpu`: every full config in plait/rl_free_configs, not shrunk, through
   plait-train (a few hundred steps, evaluation, checkpoints, kill -9, resume) and plait-decode
   from the best checkpoint, and the TransformerLM config once more with rotary positions;
   configs run side by side (--workers processes on the one GPU).
2. The GPU-only paths under the ordinary tests, now on the GPU: the Pallas decode kernel and
   the cuDNN attention (tests/layers/attention/test_decode_kernel.py, test_dense.py), rotary
   layers on cuDNN and the kernels vs XLA (test_rotary.py), buffer
   donation and bf16 mixed precision in the Loop (tests/supervised/test_loop.py), besides the
   configs' own bf16 compute.
3. benchmarks/gpu_checks.py: cuDNN flash attention vs XLA vs float32, at real lengths.
4. benchmarks/block_sparse_kernel_gpu.py: the fused block-sparse kernel vs XLA, values and
   gradients, bf16 and float32, padded and odd lengths, both directions.
5. benchmarks/lsh_kernel_gpu.py: LSH attention on that kernel vs the XLA LSH path (same hash
   and sort), values and gradients, bf16 and float32, padded and odd lengths.
6. benchmarks/favor_causal_gpu.py --lengths 4096 --check_length 16384: the causal FAVOR+
   kernels vs the XLA path and the exact product (values and gradients; at 16K the prefix
   sums span 4 segments walked in parallel), then one timing row.
7. benchmarks/qr_features_gpu.py: the random features' QR kernel vs jnp.linalg.qr and the
   factor's defining properties, then its timing.

The parts run side by side (--sequential: one at a time, for compile times without
contention). Writes --out/summary.md (date, GPU, each part's result, per-config compile times
and held-out losses) and the logs beside it; exits non-zero if any part failed or timed out.
The parts allocate GPU memory as they go (no preallocation), so give the suite the GPU alone:
beside other work holding memory a config can run out of it (RESULTS section 31: the
Performer config beside four trainings holding 35 GiB of an H100); rerun such a config alone
(PLAIT_DATA_DIR set as above):

  PLAIT_GPU_SUITE_STEPS=0.5 XLA_PYTHON_CLIENT_PREALLOCATE=false python -m pytest -m gpu \\
      tests/gpu -k performer_crime_and_punishment
"""
import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_PATH_TESTS = ['tests/layers/attention/test_decode_kernel.py',
                  'tests/layers/attention/test_dense.py',
                  'tests/layers/attention/test_favor_deterministic.py',
                  'tests/layers/attention/test_rotary.py',
                  'tests/supervised/test_loop.py::'
                  'test_eval_after_donating_train_steps_reads_the_current_state',
                  'tests/supervised/test_loop.py::'
                  'test_mixed_precision_keeps_float32_master_weights']


def _run_parts(parts, out, env, deadline_s, sequential):
  """Runs each part (in parallel unless `sequential`) with its log in `out`; stops what is left
  at `deadline_s`. Returns [(name, exit code or 'timed out', last log line)]."""
  start, running, results = time.monotonic(), {}, {}
  def launch(name, argv):
    print(f'== {name}: {" ".join(argv)}', flush=True)
    log = open(os.path.join(out, f'{name}.log'), 'w')  # pylint: disable=consider-using-with
    running[name] = (subprocess.Popen(argv, cwd=REPO, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True), log)
  queue = list(parts)
  while queue or running:
    while queue and (not sequential or not running):
      launch(*queue.pop(0))
    for name, (process, log) in list(running.items()):
      if process.poll() is not None:
        log.close()
        results[name] = process.returncode
        del running[name]
    if deadline_s and time.monotonic() - start > deadline_s:
      for name, (process, log) in running.items():
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()
        results[name] = 'timed out'
      running, queue = {}, []
    time.sleep(0.5)
  rows = []
  for name, _ in parts:
    with open(os.path.join(out, f'{name}.log')) as f:
      lines = f.read().strip().splitlines() or ['']
    # pytest's closing line ('3 passed, 1 skipped in 9.1s'), else the log's last line.
    tail = next((l for l in reversed(lines) if re.search(r'\d+ (passed|failed|error)', l)),
                lines[-1]).strip('= ')
    rows.append((name, results.get(name, 'not run'), tail))
    print(f'   {name}: exit {rows[-1][1]}: {tail}', flush=True)
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--out', default='runs/gpu_suite')
  p.add_argument('--workers', type=int, default=3, help='configs trained side by side')
  p.add_argument('--steps_scale', default='1', help='scales the configs\' step counts')
  p.add_argument('--deadline_s', type=float, default=0, help='stop what is left after this')
  p.add_argument('--sequential', action='store_true',
                 help='one part at a time (compile times without contention; slower)')
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
  pytest = [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider']
  parts = [
      ('full_configs', pytest + ['-m', 'gpu', '-n', str(args.workers), '--dist', 'worksteal',
                                 'tests/gpu']),
      ('gpu_paths', pytest + ['-m', 'not slow', '-n', '0', *GPU_PATH_TESTS]),
      ('cudnn_checks', [sys.executable, 'benchmarks/gpu_checks.py']),
      ('block_sparse_kernel_checks', [sys.executable, 'benchmarks/block_sparse_kernel_gpu.py']),
      ('lsh_kernel_checks', [sys.executable, 'benchmarks/lsh_kernel_gpu.py']),
      ('favor_kernel_checks', [sys.executable, 'benchmarks/favor_causal_gpu.py', '--lengths',
                               '4096', '--check_length', '16384', '--budget_s', '0.2']),
      ('qr_kernel_checks', [sys.executable, 'benchmarks/qr_features_gpu.py']),
  ]
  results = _run_parts(parts, out, env, args.deadline_s, args.sequential)
  import jax  # pylint: disable=import-outside-toplevel
  lines = [f'GPU suite, {datetime.date.today()}, {jax.devices()[0].device_kind}, '
           f'jax {jax.__version__}', '', '| part | exit | last line |', '| --- | --- | --- |']
  lines += [f'| {n} | {c} | {t} |' for n, c, t in results]
  lines += ['', f'(parts run {"one at a time" if args.sequential else "side by side"}, configs '
            f'{args.workers} at a time: compile times include that contention)']
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
  return 1 if any(code != 0 for _, code, _ in results) else 0


if __name__ == '__main__':
  sys.exit(main())
