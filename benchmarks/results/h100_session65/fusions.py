"""The largest fusions of the largest optimized HLO module in an XLA dump, by the bytes of
their outputs: each fusion's instruction (shapes, operands) and its computation's ROOT.

  python fusions.py /tmp/dump [top]
"""
import glob
import os
import re
import sys

BYTES = {'f32': 4, 'bf16': 2, 'f16': 2, 's32': 4, 'u32': 4, 'pred': 1, 's8': 1, 'u8': 1}


def out_bytes(line):
  """Bytes of the arrays in the instruction's result type (before ' fusion(')."""
  result = line.split('=', 1)[1].split(' fusion(')[0]
  total = 0
  for dtype, dims in re.findall(r'(\w+)\[([\d,]*)\]', result):
    n = 1
    for d in filter(None, dims.split(',')):
      n *= int(d)
    total += n * BYTES.get(dtype, 4)
  return total


def main(folder, top='15'):
  path = max(glob.glob(os.path.join(folder, '*after_optimizations.txt')), key=os.path.getsize)
  text = open(path).read()
  print(path)
  lines = [l.strip() for l in text.splitlines() if ' fusion(' in l and '=' in l]
  for line in sorted(lines, key=out_bytes, reverse=True)[:int(top)]:
    print(f'== {out_bytes(line) / 2 ** 20:.1f} MiB: {line[:400]}')
    called = re.search(r'calls=%?([\w.\-]+)', line)
    body = called and re.search(rf'^%?{re.escape(called.group(1))} .*?^}}', text, re.M | re.S)
    if body:
      root = [l.strip() for l in body.group(0).splitlines() if l.strip().startswith('ROOT')]
      ops = re.findall(r'= \S+ (\w+)\(', body.group(0))
      print(f'   ops: {" ".join(sorted(set(ops)))}\n   {root[0][:300] if root else ""}')


if __name__ == '__main__':
  main(*sys.argv[1:])
