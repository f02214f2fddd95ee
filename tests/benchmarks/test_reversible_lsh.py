"""benchmarks/reversible_lsh_cpu.py runs and reports both kinds in both dtypes."""
import re

import pytest

from tests.benchmarks.scripts import run_script


@pytest.mark.slow
def test_reversible_lsh_script_reports_every_kind_and_dtype():
  out = run_script('reversible_lsh_cpu.py', '--d_model', '32', '--length', '256',
                   '--blocks', '2').stdout
  rows = re.findall(r'^(dense|lsh)\s+(float32|bfloat16|bf16 f, f32 stream)\s*: reversible vs plain '
                    r'([0-9.e+-]+)', out, re.M)
  variants = ['float32', 'bfloat16', 'bf16 f, f32 stream']
  assert [(k, d) for k, d, _ in rows] == [(k, d) for k in ('dense', 'lsh') for d in variants], out
  assert float(rows[0][2]) < 1e-5, out   # dense float32: reconstruction rounding alone
  flips = re.findall(r'buckets of rebuilt inputs that differ: (\d+) of (\d+)', out)
  assert len(flips) == 3 and all(int(total) == 2 * 4 * 2 * 256 for _, total in flips), out
