"""benchmarks/reversible_lsh_cpu.py runs and reports both kinds in both dtypes."""
import re

import pytest

from tests.benchmarks.scripts import run_script


@pytest.mark.slow
def test_reversible_lsh_script_reports_every_kind_and_dtype():
  out = run_script('reversible_lsh_cpu.py', '--d_model', '32', '--length', '256',
                   '--blocks', '2').stdout
  rows = re.findall(r'^(dense|lsh)\s+(float32|bfloat16)\s*: reversible vs plain ([0-9.e+-]+)',
                    out, re.M)
  assert [(k, d) for k, d, _ in rows] == [('dense', 'float32'), ('dense', 'bfloat16'),
                                          ('lsh', 'float32'), ('lsh', 'bfloat16')], out
  assert float(rows[0][2]) < 1e-5, out   # dense float32: reconstruction rounding alone
