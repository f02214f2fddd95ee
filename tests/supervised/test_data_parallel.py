"""Data parallelism: 8 CPU devices give the same losses as 1 device on the same global batch."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = """
import jax, numpy as np
from jax.sharding import Mesh
from plait.supervised import training
from tests.supervised import helpers
assert jax.device_count() == 8
def losses(mesh):
  loop = training.Loop(helpers.tiny_lm(), helpers.lm_task(helpers.RandomTokens(batch=16)),
                       mesh=mesh, settings=helpers.settings())
  loop.run(4)
  return loop, helpers.train_losses(loop)
one, l1 = losses(Mesh(np.array(jax.devices()[:1]), ('data',)))
eight, l8 = losses('auto')
assert eight.mesh.shape['data'] == 8
leaf = jax.tree_util.tree_leaves(eight.weights)[0]
assert len(leaf.sharding.device_set) == 8
np.testing.assert_allclose(l8, l1, rtol=1e-6)
assert l1[-1] < l1[0]
print('equal', l1, l8)
"""


@pytest.mark.slow
def test_eight_device_data_parallel_matches_one_device():
  env = dict(os.environ, PYTHONPATH=REPO,
             XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')
  out = subprocess.run([sys.executable, '-c', SCRIPT], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=600, check=False)
  assert out.returncode == 0 and 'equal' in out.stdout, out.stdout + out.stderr
