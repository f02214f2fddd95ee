"""The suite's own settings (tests/conftest.py): the longest files start first (the files named
exist; the hook moves their tests to the front, longest first, the rest in their order), and on
a CPU XLA compiles without LLVM optimization."""
import os
import pathlib
import types

from tests import conftest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_longest_file_exists():
  missing = [p for p in conftest.LONGEST_FILES if not (ROOT / p).is_file()]
  assert not missing, f'tests/conftest.py LONGEST_FILES names no such file: {missing}'


def test_the_longest_files_move_to_the_front_in_their_order():
  first, second = conftest.LONGEST_FILES[:2]
  ids = ['tests/a.py::t1', f'{second}::t', 'tests/b.py::t', f'{first}::t[x]', 'tests/a.py::t2',
         f'{first}::u']
  items = [types.SimpleNamespace(nodeid=i) for i in ids]
  conftest.pytest_collection_modifyitems(items)
  assert [i.nodeid for i in items] == [ids[3], ids[5], ids[1], ids[0], ids[2], ids[4]]


def test_on_a_cpu_xla_compiles_without_llvm_optimization():
  if conftest._cpu_only():  # pylint: disable=protected-access
    assert 'xla_backend_optimization_level' in os.environ['XLA_FLAGS']
