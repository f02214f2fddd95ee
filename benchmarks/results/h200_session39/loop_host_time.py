"""Where a Pathfinder Loop step's wall time goes on the host (session 39; a record, not a tool).

  python benchmarks/results/h200_session39/loop_host_time.py --steps 2000 --splits_dir .data/splits

Trains lra_pathfinder_transformer (as shipped, no evaluation until the end, no checkpoints)
through plait-train's train() with the Loop's host-side methods wrapped in timers, then prints
each one's share of the run's wall time per step and the median logged step_time.
"""
import argparse
import collections
import json
import statistics
import sys
import time

import gin

from plait import rl_free_configs
from plait.supervised import metrics_log, tasks, trainer, training

SPENT = collections.defaultdict(float)
CALLS = collections.Counter()


def timed(owner, name, label=None):
  original = getattr(owner, name)
  def wrapper(*args, **kwargs):
    start = time.perf_counter()
    try:
      return original(*args, **kwargs)
    finally:
      SPENT[label or name] += time.perf_counter() - start
      CALLS[label or name] += 1
  setattr(owner, name, wrapper)


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--steps', type=int, default=2000)
  p.add_argument('--splits_dir', default='.data/splits')
  p.add_argument('--out', default='/tmp/loop_host_time')
  p.add_argument('--config', action='append', default=[])
  args = p.parse_args()
  for name in ('_next_batch', '_prefetch_next_batch', '_check_batch', '_launch', '_finish',
               '_record', '_place_batch', 'run_evals', 'save_checkpoint'):
    timed(training.Loop, name)
  timed(tasks.TrainTask, 'learning_rate')
  timed(metrics_log.Progress, 'train_step', 'progress.train_step')
  bindings = [f'train.steps = {args.steps}', f'LoopSettings.checkpoint_every = {args.steps}',
              "LoopSettings.progress = 'none'", 'LoopSettings.tensorboard = False',
              'train.plot = False', 'train.n_eval_batches = 1',
              f"lra_pathfinder_inputs.cache_dir = '{args.splits_dir}'",
              'lra_pathfinder_inputs.workers = 2', f'LoopSettings.eval_every = {args.steps}']
  trainer.parse_config([rl_free_configs.path('lra_pathfinder_transformer')],
                       bindings + args.config)
  start = time.perf_counter()
  trainer.train(args.out, overwrite=True)
  wall = time.perf_counter() - start
  rows = [json.loads(line) for line in open(f'{args.out}/metrics.jsonl')]
  step_times = [r['step_time'] for r in rows if r.get('split') == 'train' and 'step_time' in r]
  result = {'wall_s': round(wall, 1), 'steps': args.steps,
            'median_step_time_ms': round(1000 * statistics.median(step_times[50:]), 2),
            'ms_per_step': {k: round(1000 * v / args.steps, 3) for k, v in
                            sorted(SPENT.items(), key=lambda kv: -kv[1])},
            'calls': dict(CALLS)}
  print(json.dumps(result, indent=1))
  json.dump(result, open(f'{args.out}.json', 'w'), indent=1)


if __name__ == '__main__':
  sys.exit(main())
