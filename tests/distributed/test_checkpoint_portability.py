"""Checkpoints move between device counts: 1 device -> 2 devices (sharded) -> 1 device."""
import numpy as np

from plait.supervised import checkpoints
from plait.shapes import ShapeDtype
from tests.distributed import helpers, worker


def _leaves_equal(tree, npz):
  saved = np.load(npz)
  leaves = worker.leaves(tree)
  assert len(leaves) == len(saved.files)
  for i, leaf in enumerate(leaves):
    np.testing.assert_array_equal(leaf, saved[f'arr_{i}'], err_msg=f'leaf {i}')


def test_checkpoint_written_on_one_device_and_on_two_restores_on_the_other(tmp_path):
  out = str(tmp_path / 'run')
  # 1 device (this process) writes step 2.
  one = worker.loop('tiny', None, output_dir=out)
  one.run(2)
  one.close()
  np.savez(tmp_path / 'one.npz', *worker.leaves(one.weights))
  # 2 devices with weights split over 'model' resume it, train step 3 and save.
  result = helpers.run_worker('checkpoint', 2, out, tmp_path / 'one.npz', tmp_path / 'two.npz')
  assert result['step'] == 2 and result['equal'], result
  assert "P(None, 'model')" in result['specs']
  assert result['final_step'] == 3 and len(result['losses']) == 1
  # Back on 1 device: restore_model and a resumed Loop both read the sharded checkpoint.
  model = worker.model('tiny')
  weights, _, step = checkpoints.restore_model(out, model, ShapeDtype((4, 16), np.int32))
  assert step == 3
  _leaves_equal(weights, tmp_path / 'two.npz')
  resumed = worker.loop('tiny', None, output_dir=out)
  assert resumed.step == 3
  _leaves_equal(resumed.weights, tmp_path / 'two.npz')
  resumed.close()
