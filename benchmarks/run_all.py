"""The whole GPU performance suite (issue 8) in one command, ending in one summary table.

Runs, each in its own process (so one failure or OOM does not stop the rest), the scripts
whose results are recorded in RESULTS.md, writes their JSON under --out, then prints a
table of the targeted figures beside their targets.

  python benchmarks/run_all.py --out runs/bench            # GPU, the full sizes (~30 min)
  python benchmarks/run_all.py --quick --out runs/bench    # GPU, small lengths (~5 min)
  python benchmarks/run_all.py --tiny --out /tmp/bench     # CPU smoke (numbers meaningless)
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def suite(out, quick=False, tiny=False):
  """[(name, argv, json path)] of the benchmark runs."""
  j = lambda name: os.path.join(out, f'{name}.json')
  if tiny:
    return [
        ('attention', ['attention_gpu.py', '--lengths', '512', '--causal', 'causal', '--kinds',
                       'xla', 'lsh', 'favor', 'block_sparse', '--budget_s', '0', '--out',
                       j('attention')], j('attention')),
        ('decode', ['models_gpu.py', 'decode', '--tiny', '--reps', '1', '--out', j('decode')],
         j('decode')),
    ]
  lengths = ['1024', '4096', '16384'] if quick else ['1024', '4096', '16384', '65536',
                                                      '262144', '1048576']
  reformer_len = '65536' if quick else '1048576'
  return [
      ('attention', ['attention_gpu.py', '--lengths', *lengths, '--budget_s', '0.5', '--out',
                     j('attention')], j('attention')),
      ('reformer_long', ['models_gpu.py', 'reformer_long', '--lengths', reformer_len, '--reps',
                         '2', '--out', j('reformer_long')], j('reformer_long')),
      ('mfu', ['models_gpu.py', 'mfu', '--only', 'TransformerLM', 'PerformerLM',
               'ReformerLM(lsh)', '--reps', '3' if quick else '5', '--out', j('mfu')], j('mfu')),
      ('decode', ['models_gpu.py', 'decode', '--batch', '8', '--only', 'TransformerLM',
                  'PerformerLM', '--out', j('decode')], j('decode')),
      ('long_lm', ['models_gpu.py', 'long_lm', '--lengths', *(['8192'] if quick else
                                                             ['8192', '32768']),
                   '--reps', '3' if quick else '5', '--out', j('long_lm')], j('long_lm')),
  ]


def _load(path):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def attention_rows(rows):
  """Per (direction, length): each efficient kind's time relative to cuDNN flash."""
  if not rows:
    return []
  out, by_key = [], {}
  for r in rows:
    by_key.setdefault((r.get('direction'), r.get('length')), {})[r.get('kind')] = r
  for (direction, length), kinds in sorted(by_key.items(), key=lambda kv: (str(kv[0][0]),
                                                                            kv[0][1] or 0)):
    flash = kinds.get('cudnn', {}).get('ms')
    for kind in ('lsh', 'favor', 'block_sparse'):
      ms = kinds.get(kind, {}).get('ms')
      if ms is None:
        continue
      ratio = f'{ms / flash:.2f}× flash' if flash else 'no flash baseline'
      target = ('≤ 0.5× flash' if length == 65536 and direction == 'causal' else
                '≥ 10× faster' if length and length >= 1048576 else '')
      out.append((f'attention {direction} {length} {kind}', f'{ms:.1f} ms ({ratio})', target))
  return out


def summary(out_dir):
  """[(what, measured, target)] from the JSON files the runs left."""
  rows = attention_rows(_load(os.path.join(out_dir, 'attention.json')))
  for r in _load(os.path.join(out_dir, 'reformer_long.json')) or []:
    if 'peak_gib' in r:
      rows.append((f'ReformerLM step, {r["length"]} tokens',
                   f'{r["step_s"]:.2f} s, peak {r["peak_gib"]:.2f} GiB',
                   '≤ 1.5 s and ≤ 11.56 GiB at 1M'))
  for r in _load(os.path.join(out_dir, 'mfu.json')) or []:
    if 'mfu_vs_989' in r:
      rows.append((f'MFU {r["model"]}', f'{100 * r["mfu_vs_989"]:.1f} % of 989 TFLOP/s '
                   f'({100 * r["mfu_vs_measured"]:.1f} % of measured matmul)', '≥ 50 %'))
  for r in _load(os.path.join(out_dir, 'decode.json')) or []:
    if 'on_device_speedup_at_2k' in r:
      rows.append((f'decode {r["model"]} cached vs re-run',
                   f'{r["on_device_speedup_at_2k"]:.1f}×', '≥ 20× at 2k'))
  for r in _load(os.path.join(out_dir, 'long_lm.json')) or []:
    if 'vs_transformer' in r and r['model'] != 'TransformerLM':
      rows.append((f'{r["model"]} training, {r["length"]} tokens',
                   f'{r["tokens_per_s"] / 1e6:.2f} M tokens/s ({r["vs_transformer"]:.2f}× '
                   'TransformerLM)', '> 1× (faster than cuDNN flash)'))
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--out', default='runs/bench')
  p.add_argument('--quick', action='store_true', help='small lengths (minutes)')
  p.add_argument('--tiny', action='store_true', help='CPU smoke sizes')
  args = p.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  failed = []
  for name, argv_, _ in suite(args.out, args.quick, args.tiny):
    print(f'== {name}: python {" ".join(argv_)}', flush=True)
    done = subprocess.run([sys.executable, os.path.join(HERE, argv_[0]), *argv_[1:]],
                          check=False)
    if done.returncode:
      failed.append(name)
  rows = summary(args.out)
  print('\n| benchmark | measured | target |\n| --- | --- | --- |')
  for what, measured, target in rows:
    print(f'| {what} | {measured} | {target} |')
  if failed:
    print(f'\nFAILED: {", ".join(failed)} (see their output above)', file=sys.stderr)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
