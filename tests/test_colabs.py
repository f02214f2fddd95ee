"""Executes every notebook in colabs/ as a user on a CPU would; any cell error fails.

No PLAIT_* variable is set: each notebook picks its size from the backend (`tiny` on a CPU; on
a GPU machine the kernel is pinned to the CPU so the run stays small) and reads the novel
shipped with plait. The kernel is this interpreter (a kernel spec written to a temporary
JUPYTER_PATH), so the notebooks run against the same environment as the tests, in a temporary
directory so their runs/ land there.
"""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')

ROOT = pathlib.Path(__file__).resolve().parent.parent
COLABS = ROOT / 'colabs'
NOTEBOOKS = sorted(COLABS.glob('*.ipynb'))
KERNEL = 'plait-tests-python3'
CELL_TIMEOUT_S = 240


def _setup_cell(path):
  nb = nbformat.read(str(path), as_version=4)
  return next(c for c in nb.cells if c.cell_type == 'code').source


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
  """A kernel spec for sys.executable, no PLAIT_* settings and inline (headless) figures."""
  spec_dir = tmp_path / 'jupyter' / 'kernels' / KERNEL
  spec_dir.mkdir(parents=True)
  (spec_dir / 'kernel.json').write_text(json.dumps({
      'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
      'display_name': 'plait tests', 'language': 'python'}))
  monkeypatch.setenv('JUPYTER_PATH', str(tmp_path / 'jupyter'))
  for name in ('PLAIT_DEMO_SIZE', 'PLAIT_DATA_DIR'):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setenv('PLAIT_CACHE_DIR', str(tmp_path / 'cache'))   # a new user's empty cache
  if jax.default_backend() != 'cpu':
    monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  # Jupyter's own default (CI exports MPLBACKEND=Agg, which would hide the figures).
  monkeypatch.setenv('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
  work = tmp_path / 'work'
  work.mkdir()
  return work


def test_all_four_notebooks_are_present():
  assert {p.stem for p in NOTEBOOKS} == {'quick_intro', 'reformer_text_generation',
                                        'reformer_image_completion', 'efficient_attention'}


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(path):
  nb = nbformat.read(str(path), as_version=4)
  nbformat.validate(nb)
  for cell in nb.cells:
    if cell.cell_type == 'code':
      assert cell.outputs == [] and cell.execution_count is None, path.name
  assert 'YOUR_ORG' not in path.read_text() and 'github.com' not in path.read_text()


def test_notebooks_share_one_setup_cell():
  cells = {path.name: _setup_cell(path) for path in NOTEBOOKS}
  assert len(set(cells.values())) == 1, f'setup cells differ: {sorted(cells)}'
  cell = next(iter(cells.values()))
  assert 'PLAIT_DEMO_SIZE' in cell and 'jax.default_backend()' in cell


def _run_setup_cell(monkeypatch, cwd, plait_importable=True, size=None):
  """Runs the setup cell in `cwd`; returns (its namespace, the commands it ran)."""
  monkeypatch.chdir(cwd)
  monkeypatch.setattr(sys, 'path', list(sys.path))
  if size is None:
    monkeypatch.delenv('PLAIT_DEMO_SIZE', raising=False)
  else:
    monkeypatch.setenv('PLAIT_DEMO_SIZE', size)
  if not plait_importable:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'plait' else find_spec(name, *a))
  commands = []
  monkeypatch.setattr(subprocess, 'run', lambda cmd, **kw: commands.append(cmd))
  namespace = {}
  exec(_setup_cell(NOTEBOOKS[0]), namespace)  # pylint: disable=exec-used
  return namespace, commands


def test_setup_cell_picks_the_size_from_the_backend(monkeypatch):
  namespace, commands = _run_setup_cell(monkeypatch, COLABS)
  assert commands == []   # plait is importable: nothing installed
  assert namespace['SIZE'] == ('tiny' if jax.default_backend() == 'cpu' else 'full')
  assert _run_setup_cell(monkeypatch, COLABS, size='full')[0]['SIZE'] == 'full'
  assert _run_setup_cell(monkeypatch, COLABS, size='tiny')[0]['SIZE'] == 'tiny'
  with pytest.raises(ValueError, match="PLAIT_DEMO_SIZE must be 'tiny' or 'full', got 'small'"):
    _run_setup_cell(monkeypatch, COLABS, size='small')


def test_setup_cell_installs_the_checkout_it_sits_in(monkeypatch):
  _, commands = _run_setup_cell(monkeypatch, COLABS, plait_importable=False)
  assert commands == [[sys.executable, '-m', 'pip', 'install', '-q', '-e', f'{ROOT}[images]']]
  assert sys.path[0] == str(ROOT)


def test_setup_cell_outside_a_checkout_says_what_to_do(monkeypatch, tmp_path):
  with pytest.raises(RuntimeError, match='not inside a plait checkout: clone the repository'):
    _run_setup_cell(monkeypatch, tmp_path, plait_importable=False)


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_as_on_a_cpu(path, kernel_env):
  nb = nbformat.read(str(path), as_version=4)
  client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S,
                                   resources={'metadata': {'path': str(kernel_env)}})
  client.execute()   # raises CellExecutionError naming the failing cell
  outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs]
  assert not [o for o in outputs if o.output_type == 'error']
  printed = ''.join(o.get('text', '') for o in outputs if o.output_type == 'stream')
  assert 'demo size: tiny (backend: cpu)' in printed
  assert any(o.output_type == 'display_data' and 'image/png' in o.data for o in outputs), (
      f'{path.name} drew no figure')
