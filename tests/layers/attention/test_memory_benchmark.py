"""Smoke tests of benchmarks/attention_memory_cpu.py (compiles only, tiny lengths)."""
import importlib.util
import io
import pathlib

import pytest

import plait.layers as tl

_PATH = pathlib.Path(__file__).resolve().parents[3] / 'benchmarks' / 'attention_memory_cpu.py'


def load_benchmark():
  spec = importlib.util.spec_from_file_location('attention_memory_cpu', _PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_dense_memory_grows_faster_than_chunked_and_the_table_has_their_rows():
  bench = load_benchmark()
  out = io.StringIO()
  kinds = ('CausalAttention', 'ChunkedCausalAttention')
  rows, _ = bench.main(lengths=(128, 256), n_heads=1, d_head=16, window=16, kinds=kinds,
                       out=out)
  assert [(r['kind'], r['length']) for r in rows] == [(k, n) for k in kinds for n in (128, 256)]
  assert all('error' not in r for r in rows), rows
  dense, chunked = rows[1]['ratio'], rows[3]['ratio']
  assert dense > 3.0 and chunked < dense, (dense, chunked)  # 2x length: quadratic is ~4x.
  table = out.getvalue()
  assert '| CausalAttention | defaults | 256 |' in table and 'compiled only' in table


@pytest.mark.slow
def test_table_has_a_measured_row_per_available_kind():
  bench = load_benchmark()
  out = io.StringIO()
  rows, notes = bench.main(lengths=(128, 256), n_heads=1, d_head=16, window=16, out=out)
  available = [name for name, _ in bench.kind_configs(16) if hasattr(tl, name)]
  assert sorted({r['kind'] for r in rows}) == sorted(available)
  assert len(rows) == 2 * len(available)
  assert [r for r in rows if 'error' in r] == []
  assert len(notes) == len(bench.kind_configs(16)) - len(available)
  for name in available:
    assert f'| {name} |' in out.getvalue()
