"""Print named fusions of the largest optimized HLO module in an XLA dump: each fusion's
instruction (shapes, operands) and the first lines of the computation it calls.

  python fusions.py /tmp/dump loop_transpose_fusion loop_slice_fusion_1
"""
import glob
import os
import re
import sys


def main(folder, *names):
  path = max(glob.glob(os.path.join(folder, '*after_optimizations.txt')), key=os.path.getsize)
  text = open(path).read()
  print(path)
  for name in names:
    line = re.search(rf'^\s*(ROOT )?%?{re.escape(name)} = .*$', text, re.M)
    if not line:
      print(f'== {name}: not found')
      continue
    print(f'== {name}\n{line.group(0).strip()[:600]}')
    called = re.search(r'calls=%?([\w.\-]+)', line.group(0))
    if called:
      body = re.search(rf'^%?{re.escape(called.group(1))} .*?^}}', text, re.M | re.S)
      if body:
        print('\n'.join(l[:300] for l in body.group(0).splitlines()[:14]))


if __name__ == '__main__':
  main(*sys.argv[1:])
