"""benchmarks/multi_gpu.py runs on CPU with --smoke (8 fake devices, tiny sizes)."""
import os
import sys

import numpy as np
import pytest

from tests.distributed import helpers

SCRIPT = os.path.join(helpers.REPO, 'benchmarks', 'multi_gpu.py')


def _check(result, models):
  assert result['devices'] == 8
  assert [r['model'] for r in result['data_parallel']] == models
  for row in result['data_parallel']:
    np.testing.assert_allclose(row['losses_n'], row['losses_1'], rtol=2e-6, err_msg=row['model'])
    assert row['tokens_per_s_1'] > 0 and row['tokens_per_s_n'] > 0
  one, seq, model = result['memory']
  assert one['layout'] == '1 device' and seq['layout'] == 'seq x8' and model['layout'] == 'model x8'
  assert seq['total'] < one['total'], result['memory']
  assert model['arguments'] < one['arguments'], result['memory']


def test_smoke_transformer():
  result = helpers.run_command([sys.executable, SCRIPT, '--smoke', '--models', 'transformer',
                                '--memory_model', 'transformer'], 1)
  _check(result, ['transformer'])


@pytest.mark.slow
def test_smoke_transformer_and_reformer():
  result = helpers.run_command([sys.executable, SCRIPT, '--smoke'], 1, timeout=900)
  _check(result, ['transformer', 'reformer'])
