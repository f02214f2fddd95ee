"""Picks the packed tree that call 1's A/B (ab1.txt) says should land, for call 2's suite:
the fastest at 64K among those at least 3 % faster there than main (the bracket's better
row) and no more than 3 % slower at 4K; prints its name, or 'main'.
Usage: python pick.py ab1.txt"""
import collections
import sys

times, name = collections.defaultdict(dict), None
for line in open(sys.argv[1]):
  if line.startswith('== '):
    name = line.split()[1].rstrip(':')
  elif line.startswith('| causal |') and name and '| favor |' in line:
    cells = [c.strip() for c in line.strip('|\n').split('|')]
    length, ms = int(cells[1]), float(cells[3])
    times[name][length] = min(ms, times[name].get(length, ms))
main = times.get('tree', {})
best, best_ms = 'main', main.get(65536, float('inf')) * 0.97
for tree, rows in times.items():
  if tree == 'tree' or 65536 not in rows or 4096 not in rows:
    continue
  if rows[65536] < best_ms and rows[4096] <= main.get(4096, 0) * 1.03:
    best, best_ms = tree, rows[65536]
print(best)
