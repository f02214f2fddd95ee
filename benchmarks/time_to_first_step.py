"""Time to first step of the shipped configs through `plait-train`, fresh and resumed, and of
`plait-decode`, with JAX's persistent compilation cache (issue 18.4 targets: first step of every
full config <= 20 s on one GPU; a resumed run and plait-decode <= 5 s with the cache).

  python benchmarks/time_to_first_step.py reformer_crime_and_punishment --json runs/ttfs.json
  python benchmarks/time_to_first_step.py --all --config "train.n_eval_batches = 1"

For each config, in a fresh output and cache directory: (1) `plait-train --steps=2` with a
checkpoint at step 2 (cold cache: what a new user waits); (2) the same command with
`--steps=3` (resumes from step 2 with the cache warm); (3) `plait-decode --max_length=1`
twice (the first compiles the decoding programs; the second is what a user waits for on
every later decode).
Each time is wall-clock from starting the process to the line saying the first step of that
run is done ('step 1:' / 'step 3:'), or to the end of plait-decode; the process is then let
finish. Extra `--config` bindings are passed to plait-train (e.g. a data location).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import bench_rows  # pylint: disable=g-bad-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_until(argv, marker, env):
  """(seconds from start until a stdout line starts with `marker`, or the end; output, code)."""
  start = time.perf_counter()
  process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1)
  seen, lines = None, []
  for line in process.stdout:
    lines.append(line)
    if seen is None and marker and line.startswith(marker):
      seen = time.perf_counter() - start
  code = process.wait()
  total = time.perf_counter() - start
  return (seen if seen is not None else total), ''.join(lines), code


def measure(name, bindings, work_dir):
  from plait import rl_free_configs  # pylint: disable=import-outside-toplevel
  env = dict(os.environ, PYTHONUNBUFFERED='1',
             PLAIT_COMPILATION_CACHE=os.path.join(work_dir, 'xla'),
             PYTHONPATH=os.pathsep.join([REPO] + [p for p in os.environ.get('PYTHONPATH', '')
                                                  .split(os.pathsep) if p]))
  out = os.path.join(work_dir, 'run')
  train = [sys.executable, '-m', 'plait.supervised.trainer',
           f'--config_file={rl_free_configs.path(name)}', f'--output_dir={out}',
           '--config=LoopSettings.checkpoint_every = 2', '--config=LoopSettings.eval_every = 1000000',
           '--config=LoopSettings.progress = "lines"', *[f'--config={b}' for b in bindings]]
  row = {'config': name}
  for key, steps, marker in (('fresh_s', 2, 'step 1:'), ('resumed_s', 3, 'step 3:')):
    seconds, log, code = _run_until(train + [f'--steps={steps}'], marker, env)
    if code:
      raise RuntimeError(f'{name}: plait-train exited {code}:\n{log[-3000:]}')
    row[key] = seconds
    row[key.replace('_s', '_compile_log')] = [l.strip() for l in log.splitlines()
                                              if l.startswith('compiled the')]
  decode = [sys.executable, '-m', 'plait.supervised.decode_cli', f'--output_dir={out}',
            '--max_length=1', '--prompt=The ']
  if 'imagenet' not in name and 'duplication' not in name:
    for key in ('decode_first_s', 'decode_s'):  # the first one compiles the decoding programs
      seconds, log, code = _run_until(decode, None, env)
      if code:
        raise RuntimeError(f'{name}: plait-decode exited {code}:\n{log[-3000:]}')
      row[key] = seconds
  return row


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('configs', nargs='*')
  p.add_argument('--all', action='store_true', help='every full (non-tiny) config')
  p.add_argument('--config', action='append', default=[], help='extra gin binding')
  p.add_argument('--json', default=None)
  args = p.parse_args(argv)
  sys.path.insert(0, REPO)
  def measure_fresh(name):
    with tempfile.TemporaryDirectory() as work_dir:
      return measure(name, args.config, work_dir)
  bench_rows.config_rows(args.configs, args.all, measure_fresh, args.json)
  return 0


if __name__ == '__main__':
  sys.exit(main())
