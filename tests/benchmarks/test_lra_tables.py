"""lra.py --tables_only: tables built from earlier runs' files name the device they ran on."""
import json
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parents[2] / 'benchmarks'


def test_tables_from_earlier_files_name_their_devices_and_rows(tmp_path):
  rows = [{'task': 'listops', 'model': 'reformer', 'steps': 5000, 'schedule_steps': 5000,
           'val': 36.41, 'test': 34.45}]
  first, second = tmp_path / 'a.json', tmp_path / 'b.json'
  first.write_text(json.dumps({'device': 'NVIDIA H200', 'accuracy': rows, 'speed': []}))
  second.write_text(json.dumps({'device': 'NVIDIA H100', 'accuracy': [dict(rows[0], test=1.0)],
                                'speed': []}))
  out = subprocess.run([sys.executable, str(BENCH / 'lra.py'), '--tables_only', '--include',
                        str(first), str(second), '--out', str(tmp_path / 'out')],
                       capture_output=True, text=True, timeout=300, check=True).stdout
  assert '# Long Range Arena, plait on NVIDIA H200 + NVIDIA H100' in out, out
  assert '| reformer | 34.45 (37.27)' in out, out   # the first file's row wins
