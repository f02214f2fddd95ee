"""Data parallelism over a `jax.sharding.Mesh` with a 'data' axis.

Batches are split along axis 0 over the mesh's 'data' axis; weights, state and
optimizer state are replicated. XLA inserts the gradient all-reduce, so N
devices compute the same update as one device on the same global batch.

Multi-host: `maybe_initialize_distributed()` calls `jax.distributed.initialize()`
when the environment describes a multi-process job:
  * JAX_COORDINATOR_ADDRESS (host:port), with JAX_NUM_PROCESSES and JAX_PROCESS_ID;
  * SLURM with SLURM_NTASKS > 1 (srun);
  * Open MPI with OMPI_COMM_WORLD_SIZE > 1 (mpirun).
Each process then feeds its own slice of the global batch (its local batch).
"""
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = 'data'


def multi_host_environment():
  """Which multi-process environment is set up ('jax', 'slurm', 'mpi'), or None."""
  if os.environ.get('JAX_COORDINATOR_ADDRESS'):
    return 'jax'
  if int(os.environ.get('SLURM_NTASKS', '1') or 1) > 1 and 'SLURM_JOB_ID' in os.environ:
    return 'slurm'
  if int(os.environ.get('OMPI_COMM_WORLD_SIZE', '1') or 1) > 1:
    return 'mpi'
  return None


def maybe_initialize_distributed():
  """Calls jax.distributed.initialize() in a multi-process job; returns whether it did."""
  kind = multi_host_environment()
  if kind is None:
    return False
  if jax.distributed.is_initialized():
    return True
  kwargs = {}
  if kind == 'jax':
    for key, env in (('num_processes', 'JAX_NUM_PROCESSES'), ('process_id', 'JAX_PROCESS_ID')):
      if os.environ.get(env):
        kwargs[key] = int(os.environ[env])
  jax.distributed.initialize(**kwargs)
  return True


def default_mesh():
  """A 1-D mesh over all devices (all hosts) with the 'data' axis."""
  return Mesh(np.array(jax.devices()), (DATA_AXIS,))


def replicated(mesh):
  return NamedSharding(mesh, PartitionSpec())


def replicate(tree, mesh):
  """Places every array of `tree` on all devices of the mesh."""
  return jax.device_put(tree, replicated(mesh))


def batch_sharding(mesh, ndim):
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS) if ndim else PartitionSpec())


def shard_batch(batch, mesh):
  """Splits each (host-local) batch array along axis 0 over the mesh's 'data' axis."""
  n_shards = mesh.shape[DATA_AXIS]
  n_processes = jax.process_count()
  out = []
  for i, x in enumerate(batch):
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    if x.ndim and (x.shape[0] * n_processes) % n_shards:
      raise ValueError(
          f'batch entry {i} has batch size {x.shape[0] * n_processes} (global), which does not '
          f'divide evenly over {n_shards} devices on the "{DATA_AXIS}" mesh axis; use a batch '
          f'size that is a multiple of {n_shards}.')
    sharding = batch_sharding(mesh, x.ndim)
    if n_processes > 1:
      out.append(jax.make_array_from_process_local_data(sharding, x))
    else:
      out.append(jax.device_put(x, sharding))
  return tuple(out)
