"""Two CPU devices (subprocess): data, 'model' and 'seq' sharding train like one device."""
import numpy as np
import pytest

from tests.distributed import helpers


def test_data_model_and_seq_sharding_match_one_device():
  result = helpers.run_worker('sharding', 2)
  reference = result['none']['losses']
  assert len(reference) == 2 and result['none']['mesh'] is None
  for key in ('data', 'model', 'seq'):
    np.testing.assert_allclose(result[key]['losses'], reference, rtol=2e-6, err_msg=key)
    assert result[key]['compiles'] == 1, f'{key}: the step compiled again on its own outputs'
  assert result['data']['mesh'] == {'data': 2, 'seq': 1, 'model': 1}
  assert result['data']['specs'] == ['P()']
  # Large matrices and their Adam moments are split along the feature axis; small ones not.
  assert result['model']['specs'] == ["P()", "P(None, 'model')"]
  assert result['model']['opt_specs'] == ["P()", "P(None, 'model')"]
  assert result['seq']['mesh'] == {'data': 1, 'seq': 2, 'model': 1}


@pytest.mark.slow
def test_transformer_and_reformer_data_parallel_match_one_device():
  result = helpers.run_worker('data_parallel', 2, 'transformer,reformer', timeout=900)
  for name in ('transformer', 'reformer'):
    np.testing.assert_allclose(result[name]['many'], result[name]['one'], rtol=2e-6,
                               err_msg=name)
    assert result[name]['batch_devices'] == 2


@pytest.mark.slow
def test_sharded_step_uses_less_memory_per_device():
  # A one-block LM at length 4096, d_model 64: dense attention scores dominate.
  result = helpers.run_worker('memory', 2, 4096, 64, timeout=900)
  one = result['one']
  assert result['seq']['temp'] < 0.5 * one['temp'], result
  assert result['model']['arguments'] < one['arguments'], result
  assert result['model']['total'] < one['total'], result
