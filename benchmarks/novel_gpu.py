"""Crime and Punishment: whole-novel ReformerLM vs a TransformerLM of equal size on 2k windows.

Both are trained by `plait-train` for the same wall-clock time (`--max_seconds`, compile
included) from their rl_free_configs; the TransformerLM is shrunk to the Reformer's size
(d_model 256, d_ff 512, 6 layers, 2 heads, vocab 320). Held-out loss is on the held-out
chapters (every 10th); bits per character = nats per token / ln 2 * tokens / characters of
the held-out text. Then each run's checkpoint is sampled with `plait-decode`.

  # GPU (about 2 x max_seconds + compile and decoding):
  python benchmarks/novel_gpu.py --max_seconds 240 --out runs/novel
  # CPU smoke (tiny configs): see tests/benchmarks/test_gpu_scripts_smoke.py
"""
import argparse
import json
import math
import os
import subprocess
import sys

from plait.data import text as text_lib
from plait.data.lm_inputs import load_text
from plait.data.tokenizers import Tokenizer
from plait.supervised import checkpoints
from plait.supervised.metrics_log import read_metrics

CONFIGS = 'plait/rl_free_configs'
RUNS = {
    'ReformerLM (whole novel, 2^19 tokens)': ('reformer_crime_and_punishment.gin', [
        'LoopSettings.eval_every = 50', 'LoopSettings.checkpoint_every = 100', 'LoopSettings.log_every = 10']),
    'TransformerLM (2048-token windows)': ('transformer_lm_crime_and_punishment.gin', [
        'TransformerLM.d_model = 256', 'TransformerLM.d_ff = 512', 'TransformerLM.n_heads = 2',
        'LoopSettings.eval_every = 500', 'LoopSettings.checkpoint_every = 1000']),
}
_TINY_EVAL = ['LoopSettings.eval_every = 2', 'train.eval_inputs = @eval/lm_inputs',
              "eval/lm_inputs.split = 'eval'", 'train.n_eval_batches = 1']
TINY = {  # CPU smoke test: the same flow on the tiny configs (which have no eval data).
    'ReformerLM (whole novel, 2^19 tokens)': ('reformer_crime_and_punishment_tiny.gin',
                                               _TINY_EVAL),
    'TransformerLM (2048-token windows)': ('transformer_lm_crime_and_punishment_tiny.gin',
                                           _TINY_EVAL),
}


def held_out_chars_per_token(output_dir):
  """Characters per token of the held-out chapters, with the run's own tokenizer."""
  _, held_out = text_lib.split_chapters(load_text('crime_and_punishment'), 10)
  held_out = ''.join(held_out)
  tok = Tokenizer.load(checkpoints.tokenizer_dir(output_dir))
  return len(held_out) / len(tok.encode(held_out))


def curve(output_dir):
  """[(step, elapsed_seconds, held-out bits per character)] from metrics.jsonl."""
  records = read_metrics(output_dir)
  elapsed = {r['step']: r['elapsed_seconds'] for r in records if r['split'] == 'train'}
  chars = held_out_chars_per_token(output_dir)
  # The held-out loss is 'loss' (named 'CrossEntropyLoss' in runs before issue 21).
  held_out = [(r, r.get('loss', r.get('CrossEntropyLoss'))) for r in records
              if r['split'] != 'train']
  return [(r['step'], elapsed.get(r['step'], float('nan')), loss / math.log(2) / chars)
          for r, loss in held_out if loss is not None]


def _run(cmd):
  print('$', ' '.join(cmd), flush=True)
  done = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if done.returncode:
    sys.exit(f'{cmd[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}')
  return done.stdout


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--max_seconds', type=float, default=240)
  p.add_argument('--out', default='runs/novel')
  p.add_argument('--prompt', default='Raskolnikov ')
  p.add_argument('--sample_tokens', type=int, default=200)
  p.add_argument('--tiny', action='store_true', help='tiny configs (CPU smoke test)')
  p.add_argument('--json', default=None)
  args = p.parse_args(argv)
  results = {}
  for name, (config, bindings) in (TINY if args.tiny else RUNS).items():
    out_dir = os.path.join(args.out, config.replace('.gin', ''))
    _run([sys.executable, '-m', 'plait.supervised.trainer',
          f'--config_file={os.path.join(CONFIGS, config)}', f'--output_dir={out_dir}',
          f'--max_seconds={args.max_seconds}', '--overwrite']
         + [f'--config={b}' for b in bindings])
    sample = _run([sys.executable, '-m', 'plait.supervised.decode_cli', f'--output_dir={out_dir}',
                   f'--prompt={args.prompt}', f'--max_length={args.sample_tokens}',
                   '--temperature=0.8', '--seed=0'])
    results[name] = {'curve': curve(out_dir), 'sample': sample.strip()}
  print('\n| model | steps in budget | held-out bits/char at the end | best |')
  print('| --- | --- | --- | --- |')
  for name, r in results.items():
    last = r['curve'][-1]
    print(f'| {name} | {last[0]} ({last[1]:.0f} s) | {last[2]:.3f} | '
          f'{min(c[2] for c in r["curve"]):.3f} |')
  for name, r in results.items():
    print(f'\n{name}, held-out bits/char vs step (elapsed s):')
    print(', '.join(f'{s}: {b:.3f} ({t:.0f}s)' for s, t, b in r['curve']))
    print(f'Sample ({args.prompt!r}, temperature 0.8):\n{r["sample"]}')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  main()
