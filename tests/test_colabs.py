"""Executes every notebook in colabs/ in tiny size (PLAIT_DEMO_SIZE=tiny); any cell error fails.

The kernel is this interpreter (a kernel spec written to a temporary JUPYTER_PATH), so the
notebooks run against the same environment as the tests, and in a temporary directory so
their runs/ land there.
"""
import json
import os
import pathlib
import sys

import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')

COLABS = pathlib.Path(__file__).resolve().parent.parent / 'colabs'
NOTEBOOKS = sorted(COLABS.glob('*.ipynb'))
KERNEL = 'plait-tests-python3'
CELL_TIMEOUT_S = 240


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
  """A kernel spec for sys.executable, the tiny size and inline (headless) figures."""
  spec_dir = tmp_path / 'jupyter' / 'kernels' / KERNEL
  spec_dir.mkdir(parents=True)
  (spec_dir / 'kernel.json').write_text(json.dumps({
      'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
      'display_name': 'plait tests', 'language': 'python'}))
  monkeypatch.setenv('JUPYTER_PATH', str(tmp_path / 'jupyter'))
  monkeypatch.setenv('PLAIT_DEMO_SIZE', 'tiny')
  # Headless, and figures still come back as image/png outputs.
  monkeypatch.setenv('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
  monkeypatch.setenv('PLAIT_CACHE_DIR', os.environ.get('PLAIT_CACHE_DIR',
                                                       str(tmp_path / 'cache')))
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
  first_code = next(c for c in nb.cells if c.cell_type == 'code').source
  assert "'google.colab' in sys.modules" in first_code
  assert 'PLAIT_DEMO_SIZE' in first_code


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_tiny_size(path, kernel_env):
  nb = nbformat.read(str(path), as_version=4)
  client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S,
                                   resources={'metadata': {'path': str(kernel_env)}})
  client.execute()   # raises CellExecutionError naming the failing cell
  outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs]
  assert not [o for o in outputs if o.output_type == 'error']
  assert any(o.output_type == 'display_data' and 'image/png' in o.data for o in outputs), (
      f'{path.name} drew no figure')
