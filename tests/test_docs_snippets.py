"""Every ```python snippet in README.md and docs/*.md runs as written, each on its own.

A snippet runs in a fresh namespace, in a temporary working directory (files it writes land
there). A snippet that cannot run here says so in an HTML comment on the line before its fence,
which the reader does not see rendered:

    <!-- not-run: needs a GPU -->      skipped, with the reason (and listed in NOT_RUN below)
    <!-- slow: trains 200 steps -->    runs only with `pytest -m slow`
"""
import os
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
_SNIPPET = re.compile(r'(?:<!--\s*(not-run|slow):\s*(.*?)\s*-->\s*\n)?```python\n(.*?)```', re.S)

# The snippets that are not run: (file, the reason its marker gives). A new marker must be
# added here too, so that skipping a snippet is a visible decision.
NOT_RUN = sorted([
    ('docs/models.md', 'reads the checkpoints of a plait-train run in /tmp/run'),
    ('docs/multi_device.md', 'joins a multi-process job'),
    ('docs/multi_device.md',
     'needs several devices (tests/distributed runs these meshes on 8 fake CPU devices)'),
    ('docs/quickstart.md', 'reads the run trained by the command above'),
    ('docs/training.md', 'reads the checkpoint of a training run in /tmp/run'),
])


def snippets():
  """(id 'file:line', marker or None, reason, code) for every python snippet."""
  found = []
  for path in DOCS:
    text = path.read_text()
    for m in _SNIPPET.finditer(text):
      line = text[:m.start(3)].count('\n')   # the fence's line, 1-based
      found.append((f'{path.relative_to(ROOT)}:{line}', m.group(1), m.group(2), m.group(3)))
  return found


def _params():
  params = []
  for where, marker, reason, code in snippets():
    marks = []
    if marker == 'slow':
      marks.append(pytest.mark.slow)
    elif marker == 'not-run':
      marks.append(pytest.mark.skip(reason=f'{where} not run: {reason}'))
    params.append(pytest.param(where, code, id=where, marks=marks))
  return params


def test_every_doc_has_its_snippets_found():
  assert len(snippets()) >= 15
  unmarked_fences = sum(p.read_text().count('```python') for p in DOCS)
  assert unmarked_fences == len(snippets())


def test_not_run_snippets_are_the_listed_ones():
  marked = sorted((where.split(':')[0], reason) for where, marker, reason, _ in snippets()
                  if marker == 'not-run')
  assert marked == NOT_RUN


@pytest.mark.parametrize('where,code', _params())
def test_snippet_runs(where, code, tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv('MPLBACKEND', 'Agg')
  exec(compile(code, where, 'exec'), {'__name__': 'snippet'})  # pylint: disable=exec-used
  if 'print(' in code:
    assert capsys.readouterr().out.strip(), f'{where} printed nothing'
