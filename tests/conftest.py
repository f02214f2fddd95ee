"""Shared fixtures: float32 on CPU, random inputs, the shared data dir."""
import os
import pathlib
import pkgutil


def _cpu_only():
  """True where JAX can only use the CPU: JAX_PLATFORMS=cpu, or no accelerator plugin installed
  (jax[cuda*] brings jax_plugins/jax_cuda*, TPUs libtpu)."""
  if os.environ.get('JAX_PLATFORMS') == 'cpu':
    return True
  return not any(m.name.startswith(('jax_plugins', 'jax_cuda', 'jax_rocm', 'libtpu'))
                 for m in pkgutil.iter_modules())


# On a CPU the suite's programs are tiny and compile-bound: XLA compiles them without LLVM
# optimization (about 40 % less CPU time; what a test compares is computed under the same flags
# on both sides). Set before JAX starts its backend; subprocesses (CLI, user paths, notebooks)
# inherit it. `XLA_FLAGS=--xla_backend_optimization_level=2 pytest` tests at XLA's default
# level; on a GPU machine (pytest -m gpu) XLA's defaults are kept.
if _cpu_only() and 'xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                             + ' --xla_backend_optimization_level=0').strip()

import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position

jax.config.update('jax_default_matmul_precision', 'float32')

# The longest test files, longest first (`pytest --durations`, 2 cores): xdist hands out whole
# files (--dist loadfile) in collection order (--no-loadscope-reorder), so these start first and
# the many short files fill in around them; started last, one of them ran alone at the end.
LONGEST_FILES = (
    'tests/test_colabs.py',
    'tests/supervised/test_decoding.py',
    'tests/test_user_paths_reformer.py',
    'tests/test_user_paths_dense.py',
    'tests/test_user_paths_sparse.py',
    'tests/layers/attention/test_head_loop_projection.py',
    'tests/benchmarks/test_gpu_scripts_smoke.py',
    'tests/models/test_scan_layers_models.py',
    'tests/test_docs_snippets.py',
    'tests/layers/attention/test_lsh_blocked.py',
    'tests/layers/test_scan_layers.py',
)


def pytest_collection_modifyitems(items):
  """Runs LONGEST_FILES first, in that order; every other file keeps its place after them."""
  rank = {path: i for i, path in enumerate(LONGEST_FILES)}
  items.sort(key=lambda item: rank.get(item.nodeid.split('::')[0], len(rank)))


@pytest.fixture
def rng():
  return jax.random.key(0)


def random_array(shape, seed=0, dtype=np.float32):
  """Random normal inputs (never zeros: zeros hide indexing bugs)."""
  return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.fixture
def data_dir(tmp_path_factory):
  """Directory holding crime_and_punishment.txt ($PLAIT_DATA_DIR, else ../shared/data, else
  the novel shipped with plait written to a temporary directory: no test skips for want of
  data)."""
  candidates = [os.environ.get('PLAIT_DATA_DIR'),
                pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data']
  for c in candidates:
    if c and (pathlib.Path(c) / 'crime_and_punishment.txt').exists():
      return pathlib.Path(c)
  from plait.data import text  # pylint: disable=import-outside-toplevel
  directory = tmp_path_factory.mktemp('novel')
  (directory / text.FILE_NAME).write_text(text.shipped_crime_and_punishment(), encoding='utf-8')
  return directory


@pytest.fixture(scope='session')
def user_path_cache(tmp_path_factory):
  """plait's cache for the user-path tests of one worker (SentencePiece models, XLA programs)."""
  return str(tmp_path_factory.mktemp('plait_cache'))
