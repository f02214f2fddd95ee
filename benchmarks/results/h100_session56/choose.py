"""Picks the feature-kernel setting from favor_feature_tune.py's rows (call 3's rule, fixed
before the run): the fastest 64K layer among non-default settings that is >= 5 % faster than
the default there, <= 5 % slower at 16K and <= 10 % slower at 4K; patches
plait/layers/attention/favor_feature_kernel.py's constants to it. Prints CHOSEN or KEEP."""
import json
import re
import sys

rows = [r for r in json.load(open(sys.argv[1])) if r['part'] == 'layer' and 'ms' in r]
key = lambda r: (r['rows'], r['features'], r['warps'])
ms = {(key(r), r['length']): r['ms'] for r in rows}
default = key(rows[0])
ok = [s for s in {key(r) for r in rows} - {default}
      if all((s, n) in ms and (default, n) in ms for n in (4096, 16384, 65536))
      and ms[s, 65536] <= 0.95 * ms[default, 65536] and ms[s, 16384] <= 1.05 * ms[default, 16384]
      and ms[s, 4096] <= 1.10 * ms[default, 4096]]
if not ok:
  print('KEEP', default)
  sys.exit(1)
rows_, features, warps = best = min(ok, key=lambda s: ms[s, 65536])
path = 'plait/layers/attention/favor_feature_kernel.py'
text = open(path).read()
text = re.sub(r'^_ROWS = \d+', f'_ROWS = {rows_}', text, flags=re.M)
text = re.sub(r'^_FEATURES = \d+', f'_FEATURES = {features}', text, flags=re.M)
text = re.sub(r'^COMPILER_PARAMS = \(\d+, ', f'COMPILER_PARAMS = ({warps}, ', text, flags=re.M)
open(path, 'w').write(text)
print('CHOSEN', best, {n: (ms[default, n], ms[best, n]) for n in (4096, 16384, 65536)})
