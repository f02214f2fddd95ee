"""The LRA sources are gin configurables, usable as `train.inputs = @lra_<task>_inputs`."""
import gin
import numpy as np

import plait.configurables  # pylint: disable=unused-import
import plait.data.lra


def test_every_lra_source_is_gin_configurable():
  for name in plait.data.lra.__all__:
    if name.endswith('_inputs'):
      assert name in plait.configurables.registered_names(), name


def test_a_gin_binding_reaches_the_source():
  with gin.config_scope(None):
    gin.parse_config('lra_listops_inputs.batch_size = 2\n'
                     'lra_listops_inputs.max_length = 40\n'
                     'lra_listops_inputs.min_length = 10')
    try:
      configured = gin.get_configurable('lra_listops_inputs')
      inputs, _, _ = next(configured()())
    finally:
      gin.clear_config()
  assert inputs.shape == (2, 40) and inputs.dtype == np.int32
