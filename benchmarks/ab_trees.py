"""Run one benchmark command on several git revisions of plait in one GPU call (A/B).

The device runs a copy of the working tree without .git, so other revisions travel as
gzipped tar files (about 3 MiB a tree against 8 MiB plain: a call carries 64 MiB at most):
pack them here into a folder the call carries, then on the device run the command in
each revision's tree, one after another (alone on the GPU), that tree first on PYTHONPATH.
Compare revisions only within one call: the machines differ from lease to lease.

  python benchmarks/ab_trees.py pack .data/trees main=f080900 sums=78a6135     # here
  python benchmarks/ab_trees.py run .data/trees --timeout_s 80 -- \\
      python benchmarks/attention_gpu.py --kinds favor --lengths 65536        # on the device

`run` prints '== name (commit)' before each tree's output, in the order packed; with
--bracket the working tree runs first and again last, as 'tree' (drift between the ends
says how far the other rows can be trusted). Each tree is unpacked in a temporary folder,
removed afterwards, and the command runs there: give it absolute output paths ($OUT/...).
Exit status: the first non-zero one.
"""
import argparse
import os
import subprocess
import sys
import tarfile
import tempfile

PATHS = ('plait', 'benchmarks', 'tests')   # What a benchmark command needs of a revision.
INDEX = 'trees.txt'                          # name, full commit: one line per packed tree.


def pack(folder, specs):
  """Writes folder/<name>.tar.gz (git archive of PATHS) for each 'name=rev', and the index."""
  os.makedirs(folder, exist_ok=True)
  lines = []
  for spec in specs:
    name, sep, rev = spec.partition('=')
    if not sep or not name or not rev or not name.replace('_', '').isalnum():
      raise SystemExit(f'ab_trees pack: want name=revision with a plain name, got {spec!r}.')
    found = subprocess.run(['git', 'rev-parse', '--verify', f'{rev}^{{commit}}'],
                           capture_output=True, text=True, check=False)
    if found.returncode:
      raise SystemExit(f'ab_trees pack: {rev!r} is not a commit here: {found.stderr.strip()}')
    commit = found.stdout.strip()
    with open(os.path.join(folder, f'{name}.tar.gz'), 'wb') as f:
      subprocess.run(['git', 'archive', '--format=tar.gz', commit, *PATHS], stdout=f,
                     check=True)
    lines.append(f'{name} {commit}\n')
  with open(os.path.join(folder, INDEX), 'w') as f:
    f.writelines(lines)
  return [line.split() for line in lines]


def run(folder, command, timeout_s, bracket):
  """Runs `command` in each packed tree (and the working tree around them with `bracket`)."""
  index = os.path.join(folder, INDEX)
  if not os.path.exists(index):
    raise SystemExit(f'ab_trees run: no {INDEX} in {folder!r}: pack the revisions first.')
  with open(index) as f:
    trees = [line.split() for line in f if line.strip()]
  with tempfile.TemporaryDirectory(prefix='ab_trees_') as work:
    order = [(name, commit, os.path.join(work, name)) for name, commit in trees]
    for name, _, root in order:
      with tarfile.open(os.path.join(folder, f'{name}.tar.gz'), 'r:gz') as tar:
        tar.extractall(root, filter='data')
    if bracket:
      here = ('tree', 'working tree', os.getcwd())
      order = [here] + order + [here]
    return _run_each(order, command, timeout_s)


def _run_each(order, command, timeout_s):
  """Runs `command` in each (name, commit, root) in turn; the first non-zero exit status."""
  # The working tree leaves PYTHONPATH, so a module one revision lacks is not taken from it.
  others = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
            if p and os.path.abspath(p) != os.getcwd()]
  status = 0
  for name, commit, root in order:
    print(f'== {name} ({commit})', flush=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + others))
    try:
      code = subprocess.run(command, cwd=root, env=env, timeout=timeout_s, check=False).returncode
    except subprocess.TimeoutExpired:
      print(f'== {name}: timed out after {timeout_s} s', flush=True)
      code = 124
    status = status or code
  return status


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  sub = p.add_subparsers(dest='mode', required=True)
  pk = sub.add_parser('pack', help='here: git archive each name=revision into FOLDER')
  pk.add_argument('folder')
  pk.add_argument('specs', nargs='+', metavar='name=revision')
  rn = sub.add_parser('run', help='device: run the command after -- in each packed tree')
  rn.add_argument('folder')
  rn.add_argument('--timeout_s', type=float, default=None, help='per tree')
  rn.add_argument('--bracket', action='store_true', help='the working tree first and last')
  argv = sys.argv[1:] if argv is None else list(argv)
  split = argv.index('--') if '--' in argv else len(argv)
  args, command = p.parse_args(argv[:split]), argv[split + 1:]
  if args.mode == 'pack':
    for name, commit in pack(args.folder, args.specs):
      print(f'{name} {commit}')
    return 0
  if not command:
    p.error('run: give the command after --')
  return run(args.folder, command, args.timeout_s, args.bracket)


if __name__ == '__main__':
  sys.exit(main())
