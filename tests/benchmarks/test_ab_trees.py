"""benchmarks/ab_trees.py: revisions packed here run the command each in its own tree."""
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / 'benchmarks' / 'ab_trees.py')

pytestmark = pytest.mark.skipif(not (ROOT / '.git').exists() or not shutil.which('git'),
                                reason='needs git and the checkout')


def ab_trees(*args):
  return subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)


def test_each_packed_revision_imports_its_own_plait(tmp_path):
  folder = str(tmp_path / 'trees')
  packed = ab_trees('pack', folder, 'first=HEAD', 'second=HEAD')   # a shallow clone has one
  assert packed.returncode == 0, packed.stderr
  commits = [line.split()[1] for line in packed.stdout.split('\n') if line]
  assert sorted(p.name for p in (tmp_path / 'trees').iterdir()) == [
      'first.tar.gz', 'second.tar.gz', 'trees.txt']   # gzipped: a device call carries 64 MiB
  where = 'import os, plait; print(os.path.dirname(os.path.dirname(plait.__file__)))'
  out = ab_trees('run', folder, '--bracket', '--', sys.executable, '-c', where)
  assert out.returncode == 0, out.stderr
  lines = out.stdout.split('\n')
  headers = [line for line in lines if line.startswith('== ')]
  assert headers == ['== tree (working tree)', f'== first ({commits[0]})',
                     f'== second ({commits[1]})', '== tree (working tree)']
  roots = [lines[lines.index(h) + 1] for h in headers[:3]]
  assert roots[0] == str(ROOT)
  assert roots[1].endswith('/first') and roots[2].endswith('/second')


def test_bad_revision_and_missing_index_are_clear_errors(tmp_path):
  bad = ab_trees('pack', str(tmp_path / 'trees'), 'x=no-such-revision')
  assert bad.returncode != 0 and "'no-such-revision' is not a commit here" in bad.stderr
  missing = ab_trees('run', str(tmp_path / 'empty'), '--', 'true')
  assert missing.returncode != 0 and 'pack the revisions first' in missing.stderr
