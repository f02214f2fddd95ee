"""Session 51 (CPU): does bucketing ListOps' training batches by length change what a model
learns? Session 50's short-ListOps probe (40-160 tokens, the shipped tiny config with sizes
overridden: d_model 64, 4 layers, batch 32, float32, rotary positions), trained once with
every batch padded to 160 and once with `bucket_lengths = (80, 120, 160)`; same seed, same
steps, same validation examples (unbucketed). Bucketing only changes which expressions share
a batch, so the two should learn alike.
  python benchmarks/results/cpu_session51/listops_bucketed_probe.py [steps] [out_dir] [runs]
(runs: comma-separated, default 'bucketed,padded'; `6000 /tmp/p6k bucketed` is the longer run.)
"""
import json
import os
import sys

import gin

from plait import rl_free_configs
from plait.supervised import trainer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                                'cpu_session50'))
from listops_short_probe import bindings  # pylint: disable=g-import-not-at-top,wrong-import-position

BUCKETS = ['lra_listops_inputs.bucket_lengths = (80, 120, 160)',
           'eval/lra_listops_inputs.bucket_lengths = None']


def main():
  steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
  root = sys.argv[2] if len(sys.argv) > 2 else '/tmp/listops_bucketed_probe'
  runs = sys.argv[3].split(',') if len(sys.argv) > 3 else ['bucketed', 'padded']
  for name, extra in (('bucketed', BUCKETS), ('padded', [])):
    if name not in runs:
      continue
    gin.clear_config()
    out = os.path.join(root, name)
    trainer.parse_config([rl_free_configs.path('lra_listops_transformer_tiny')],
                         bindings('rotary', steps) + extra)
    trainer.train(out)
    with open(os.path.join(out, 'metrics.jsonl')) as f:
      rows = [json.loads(l) for l in f]
    evals = [(r['step'], round(100 * r['Accuracy'], 2), round(r['loss'], 3))
             for r in rows if r.get('split') == 'eval']
    train = [r for r in rows if r.get('split') == 'train' and 'step_time' in r]
    print(json.dumps({'run': name, 'eval': evals, 'seconds': round(train[-1]['elapsed_seconds']),
                      'mean_step_ms': round(1000 * sum(r['step_time'] for r in train)
                                            / len(train), 1)}), flush=True)


if __name__ == '__main__':
  main()
