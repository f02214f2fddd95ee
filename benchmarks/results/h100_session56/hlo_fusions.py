"""Prints the named fusions of an XLA dump's optimized HLO (the instruction and the computation
it calls), e.g. the glue kernels a profile lists: python hlo_fusions.py DUMP_DIR loop_select_fusion_1 ..."""
import glob
import os
import re
import sys

dump, names = sys.argv[1], sys.argv[2:]
files = sorted(glob.glob(os.path.join(dump, '*after_optimizations.txt')), key=os.path.getsize)
text = open(files[-1]).read()   # the largest module: the timed step
print('module', os.path.basename(files[-1]))
bodies = dict(re.findall(r'\n(%?[\w.\-]+) [^\n]*\{\n(.*?)\n\}', text, re.S))
for name in names:
  hlo = re.sub(r'_(\d+)$', r'.\1', name)
  line = next((l for l in text.splitlines() if re.match(rf'\s*(ROOT )?%?{re.escape(hlo)} = ', l)), None)
  print(f'\n== {name}: {line.strip()[:400] if line else "not found"}')
  called = re.search(r'calls=(%?[\w.\-]+)', line or '')
  if called:
    body = bodies.get(called.group(1), bodies.get(called.group(1).lstrip('%'), ''))
    print('\n'.join(l[:240] for l in body.splitlines()[:45]))
