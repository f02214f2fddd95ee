"""Session 50 (CPU): ListOps at short lengths. Does a small encoder learn past the outer
operator's answer distribution (the plateau every LRA-sized ListOps run in plait stops at,
docs/lra.md "ListOps: what the models learn"), with sinusoids or with rotary positions?

The shipped lra_listops_transformer_tiny.gin with sizes and lengths overridden (40-160
tokens, d_model 64, 4 layers, batch 32), trained by plait-train's own train() for STEPS steps
per positional kind; the two rules of listops_split_check.py are scored on the same
validation examples for comparison. float32 compute (bf16 matmuls are slow on a CPU).
  python benchmarks/results/cpu_session50/listops_short_probe.py [steps] [out_dir]
"""
import collections
import json
import os
import sys

import gin

from plait import rl_free_configs
from plait.data.lra.listops import ListOpsExamples
from plait.supervised import trainer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                                'h200_session49'))
from listops_split_check import features  # pylint: disable=g-import-not-at-top,wrong-import-position

MIN_LEN, MAX_LEN, EVAL_BATCHES, BATCH = 40, 160, 32, 32


def bindings(positional, steps):
  return ['TransformerEncoder.d_model = 64', 'TransformerEncoder.d_ff = 128',
          'TransformerEncoder.n_layers = 4', 'TransformerEncoder.n_heads = 4',
          f'TransformerEncoder.max_len = {MAX_LEN}', 'TransformerEncoder.head_d_ff = 128',
          f"TransformerEncoder.positional = '{positional}'",
          f'lra_listops_inputs.batch_size = {BATCH}', f'lra_listops_inputs.max_length = {MAX_LEN}',
          f'lra_listops_inputs.min_length = {MIN_LEN}', f'train.n_eval_batches = {EVAL_BATCHES}',
          f'train.steps = {steps}', 'multifactor.warmup_steps = 300',
          'LoopSettings.checkpoint_every = 500', "LoopSettings.progress = 'none'",
          'LoopSettings.log_every = 100', "LoopSettings.compute_dtype = 'float32'"]


def rules(n_fit=20_000, n_eval=EVAL_BATCHES * BATCH):
  """Accuracy % of the two rules on validation examples 0..n_eval-1."""
  def data(split, n):
    gen = ListOpsExamples(split, 0, max(n, 2000), MIN_LEN, MAX_LEN)
    return [(features(t), int(y)) for t, y in (gen.generate(i) for i in range(n))]
  train, val = data('train', n_fit), data('validation', n_eval)
  out = {}
  for name, key in (('outer operator', lambda f: f[0]), ('operator + direct min/max', lambda f: f)):
    by = collections.defaultdict(collections.Counter)
    for f, y in train:
      by[key(f)][y] += 1
    best = {k: c.most_common(1)[0][0] for k, c in by.items()}
    out[name] = round(100 * sum(best.get(key(f), 0) == y for f, y in val) / len(val), 2)
  return out


def main():
  steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
  root = sys.argv[2] if len(sys.argv) > 2 else '/tmp/listops_short_probe'
  print(json.dumps({'rules on validation': rules()}), flush=True)
  for positional in ('sinusoidal', 'rotary'):
    gin.clear_config()
    out = os.path.join(root, positional)
    trainer.parse_config([rl_free_configs.path('lra_listops_transformer_tiny')],
                         bindings(positional, steps))
    trainer.train(out)
    with open(os.path.join(out, 'metrics.jsonl')) as f:
      evals = [json.loads(l) for l in f if '"eval"' in l]
    print(json.dumps({'positional': positional, 'eval': [
        (e['step'], round(100 * e['Accuracy'], 2), round(e['loss'], 3)) for e in evals]}),
          flush=True)


if __name__ == '__main__':
  main()
