"""plait.supervised.distributed in this (one-device) process: layouts, meshes, initialize()."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import plait.layers as tl
from plait.shapes import ShapeDtype
from plait.supervised import distributed, optimizers


@pytest.mark.parametrize('shape, n_model, expected', [
    ((64, 128), 2, P(None, 'model')),      # feature (last) axis first
    ((128, 63), 2, P('model')),            # else another axis that divides
    ((63, 63), 2, P()),                    # nothing divides: replicated
    ((8, 8), 2, P()),                      # too small to be worth a collective
    ((8192,), 2, P()),                     # vectors (biases, norms) stay whole
    ((64, 128), 1, P()),                   # no 'model' axis
])
def test_weight_spec(shape, n_model, expected):
  assert distributed.weight_spec(shape, n_model) == expected


def test_make_mesh_has_all_axes_and_checks_sizes():
  mesh = distributed.make_mesh()
  assert mesh.axis_names == ('data', 'seq', 'model')
  assert dict(mesh.shape) == {'data': jax.device_count(), 'seq': 1, 'model': 1}
  with pytest.raises(ValueError, match='must divide'):
    distributed.make_mesh(model=jax.device_count() + 1)
  with pytest.raises(ValueError, match='data=3'):
    distributed.make_mesh(data=3 * jax.device_count())


def test_initialize_without_a_job_does_nothing(monkeypatch):
  for key in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID',
              'SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE'):
    monkeypatch.delenv(key, raising=False)
  assert distributed.initialize() is False
  assert not jax.distributed.is_initialized()


def test_initialize_asks_for_what_is_missing(monkeypatch):
  monkeypatch.delenv('JAX_NUM_PROCESSES', raising=False)
  monkeypatch.delenv('JAX_PROCESS_ID', raising=False)
  monkeypatch.setenv('JAX_COORDINATOR_ADDRESS', 'localhost:1')
  with pytest.raises(ValueError, match='num_processes and process_id'):
    distributed.initialize()
  monkeypatch.delenv('JAX_COORDINATOR_ADDRESS')
  with pytest.raises(ValueError, match='coordinator_address'):
    distributed.initialize(num_processes=2, process_id=0)
  assert not jax.distributed.is_initialized()


def test_shard_batch_names_the_batch_size_that_does_not_divide():
  mesh = distributed.make_mesh()
  n = jax.device_count()
  x = np.random.default_rng(0).integers(0, 9, (3 * n, 4)).astype(np.int32)
  (placed,) = distributed.shard_batch((x,), mesh)
  np.testing.assert_array_equal(np.asarray(placed), x)
  if n > 1:
    with pytest.raises(ValueError, match='multiple of'):
      distributed.shard_batch((x[:n + 1],), mesh)


def test_train_step_memory_reports_one_devices_bytes():
  model = tl.Serial(tl.Embedding(16, 32), tl.Dense(16))
  sig = [ShapeDtype((4, 8), jnp.int32)] * 2 + [ShapeDtype((4, 8), jnp.float32)]
  memory = distributed.train_step_memory(model, tl.CrossEntropyLoss(), optimizers.Adam(1e-3),
                                         sig)
  weight_bytes = 4 * (16 * 32 + 32 * 16 + 16)
  assert memory['arguments'] >= 3 * weight_bytes   # weights + two Adam moments
  assert memory['total'] >= memory['arguments'] > 0
