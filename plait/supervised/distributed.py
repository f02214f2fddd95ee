"""Meshes and shardings for training on many devices and hosts.

A mesh has up to three named axes, all optional except 'data':
  data:  batches are split along axis 0 (data parallelism); XLA inserts the
         gradient all-reduce, so N devices compute the same update as one device
         on the same global batch.
  model: large weight matrices (and their optimizer state) are split along their
         feature (last) axis, so each device holds 1/M of them (tensor sharding).
  seq:   batch arrays are also split along axis 1, the length axis, so the
         activations of very long sequences are spread over devices.
For 'model' and 'seq' we only place the arrays; GSPMD (XLA's sharding propagation)
partitions the computation and inserts the collectives, so results equal the
unsharded run up to float rounding.

  >>> mesh = make_mesh(model=2)            # ('data', 'seq', 'model') = (n/2, 1, 2)
  >>> loop = Loop(model, task, mesh=mesh)  # weights split over 'model'

Multi-host: call `initialize()` first in every process (it wraps
`jax.distributed.initialize` and reads the usual environment variables); then
`jax.devices()` lists all processes' devices, `make_mesh()` spans them, and each
process feeds its own slice of the global batch (its local batch).
"""
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = 'data'
SEQ_AXIS = 'seq'
MODEL_AXIS = 'model'
MESH_AXES = (DATA_AXIS, SEQ_AXIS, MODEL_AXIS)

# Arrays smaller than this stay replicated under 'model' sharding: splitting biases
# and norms saves nothing and costs a collective each.
MIN_SHARDED_SIZE = 2 ** 12


def multi_host_environment():
  """Which multi-process environment is set up ('jax', 'slurm', 'mpi'), or None."""
  if os.environ.get('JAX_COORDINATOR_ADDRESS'):
    return 'jax'
  if int(os.environ.get('SLURM_NTASKS', '1') or 1) > 1 and 'SLURM_JOB_ID' in os.environ:
    return 'slurm'
  if int(os.environ.get('OMPI_COMM_WORLD_SIZE', '1') or 1) > 1:
    return 'mpi'
  return None


def initialize(coordinator_address=None, num_processes=None, process_id=None,
               local_device_ids=None, timeout_s=300):
  """Joins a multi-process JAX job (one process per host, or per GPU); idempotent.

  Arguments left as None are read from JAX_COORDINATOR_ADDRESS ('host:port' of
  process 0), JAX_NUM_PROCESSES, JAX_PROCESS_ID and JAX_LOCAL_DEVICE_IDS ('0,1');
  under SLURM (srun) or Open MPI (mpirun) JAX detects all of them itself.

    >>> initialize('10.0.0.1:1234', num_processes=2, process_id=int(sys.argv[1]))
    >>> jax.device_count()   # all devices of all processes

  Must run before anything touches a device. Returns True if this process is now
  part of a multi-process job, False if there was nothing to join (no arguments and
  no such environment), so single-process scripts can call it unconditionally.
  """
  if jax.distributed.is_initialized():
    return True
  env = os.environ
  coordinator_address = coordinator_address or env.get('JAX_COORDINATOR_ADDRESS') or None
  if num_processes is None and env.get('JAX_NUM_PROCESSES'):
    num_processes = int(env['JAX_NUM_PROCESSES'])
  if process_id is None and env.get('JAX_PROCESS_ID'):
    process_id = int(env['JAX_PROCESS_ID'])
  if local_device_ids is None and env.get('JAX_LOCAL_DEVICE_IDS'):
    local_device_ids = [int(i) for i in env['JAX_LOCAL_DEVICE_IDS'].split(',')]
  if coordinator_address is None and multi_host_environment() is None:
    if num_processes not in (None, 1):
      raise ValueError(f'initialize: num_processes={num_processes} needs a coordinator_address '
                       '(host:port of process 0) or JAX_COORDINATOR_ADDRESS.')
    return False
  if coordinator_address is not None and (num_processes is None or process_id is None):
    raise ValueError(f'initialize: with coordinator_address={coordinator_address!r} give '
                     f'num_processes and process_id too (got {num_processes}, {process_id}); '
                     'or set JAX_NUM_PROCESSES and JAX_PROCESS_ID.')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id,
                             local_device_ids=local_device_ids,
                             initialization_timeout=timeout_s)
  return True


def make_mesh(data=None, seq=1, model=1, devices=None):
  """A ('data', 'seq', 'model') mesh over `devices` (default: all devices of all hosts).

  `data=None` uses every device left after seq * model. Axes of size 1 are harmless:
  `make_mesh()` is plain data parallelism.
  """
  devices = list(jax.devices() if devices is None else devices)
  n = len(devices)
  if seq < 1 or model < 1 or n % (seq * model):
    raise ValueError(f'make_mesh: seq={seq} * model={model} must divide the {n} devices.')
  if data is None:
    data = n // (seq * model)
  if data * seq * model != n:
    raise ValueError(f'make_mesh: data={data} * seq={seq} * model={model} = '
                     f'{data * seq * model}, but there are {n} devices; pass devices= to use '
                     'fewer, or data=None to use all.')
  return Mesh(np.array(devices).reshape(data, seq, model), MESH_AXES)


def default_mesh():
  """A data-parallel mesh over all devices (all hosts)."""
  return make_mesh()


def axis_size(mesh, axis):
  return mesh.shape[axis] if axis in mesh.axis_names else 1


def replicated(mesh):
  return NamedSharding(mesh, PartitionSpec())


def weight_spec(shape, n_model, min_size=MIN_SHARDED_SIZE):
  """PartitionSpec for one weight-like array under a 'model' axis of size `n_model`.

  Matrices (ndim >= 2) with at least `min_size` elements are split along the last
  axis that `n_model` divides, preferring the feature (last) axis; anything else
  is replicated.
  """
  if n_model <= 1 or len(shape) < 2 or int(np.prod(shape)) < min_size:
    return PartitionSpec()
  for axis in reversed(range(len(shape))):
    if shape[axis] % n_model == 0 and shape[axis] >= n_model:
      return PartitionSpec(*([None] * axis + [MODEL_AXIS]))
  return PartitionSpec()


def weight_shardings(tree, mesh, min_size=MIN_SHARDED_SIZE):
  """A NamedSharding for every leaf of `tree` (weights, state or optimizer state)."""
  n_model = axis_size(mesh, MODEL_AXIS)
  def sharding(x):
    shape = np.shape(x)
    floating = hasattr(x, 'dtype') and jax.numpy.issubdtype(x.dtype, jax.numpy.floating)
    spec = weight_spec(shape, n_model, min_size) if floating else PartitionSpec()
    return NamedSharding(mesh, spec)
  return jax.tree_util.tree_map(sharding, tree)


def layout(tree, mesh):
  """Shardings of weights/state/optimizer state: replicated, or split over 'model'."""
  if axis_size(mesh, MODEL_AXIS) == 1:
    return jax.tree_util.tree_map(lambda _: replicated(mesh), tree)
  return weight_shardings(tree, mesh)


def place(tree, mesh):
  """Puts weights/state/optimizer state on the mesh devices as `layout` says."""
  return jax.device_put(tree, layout(tree, mesh))


def batch_spec(mesh, ndim):
  """Batch arrays: axis 0 over 'data' and, with a 'seq' axis, axis 1 over 'seq'."""
  if ndim == 0:
    return PartitionSpec()
  if ndim >= 2 and axis_size(mesh, SEQ_AXIS) > 1:
    return PartitionSpec(DATA_AXIS, SEQ_AXIS)
  return PartitionSpec(DATA_AXIS)


def batch_sharding(mesh, ndim):
  return NamedSharding(mesh, batch_spec(mesh, ndim))


def shard_batch(batch, mesh):
  """Splits each (host-local) batch array over the mesh (see `batch_spec`)."""
  n_shards = mesh.shape[DATA_AXIS]
  n_seq = axis_size(mesh, SEQ_AXIS)
  n_processes = jax.process_count()
  out = []
  for i, x in enumerate(batch):
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    if x.ndim and (x.shape[0] * n_processes) % n_shards:
      raise ValueError(
          f'batch entry {i} has batch size {x.shape[0] * n_processes} (global), which does not '
          f'divide evenly over {n_shards} devices on the "{DATA_AXIS}" mesh axis; use a batch '
          f'size that is a multiple of {n_shards}.')
    if x.ndim >= 2 and x.shape[1] % n_seq:
      raise ValueError(
          f'batch entry {i} has shape {tuple(x.shape)}: its length {x.shape[1]} does not divide '
          f'evenly over the {n_seq} devices of the "{SEQ_AXIS}" mesh axis; pad the length to a '
          f'multiple of {n_seq}.')
    sharding = batch_sharding(mesh, x.ndim)
    if n_processes > 1:
      out.append(jax.make_array_from_process_local_data(sharding, x))
    else:
      out.append(jax.device_put(x, sharding))
  return tuple(out)


def keep_shardings(train_step, mesh):
  """Wraps a train step so its new weights, state and optimizer state keep `place`'s layout.

  Without this, GSPMD may pick another layout for the outputs (e.g. split a matrix
  along its other axis), and the next step would see new input shardings and compile
  again.
  """
  def constrain(tree):
    return jax.tree_util.tree_map(jax.lax.with_sharding_constraint, tree, layout(tree, mesh))

  def step(weights, state, opt_state, batch, rng):
    out = train_step(weights, state, opt_state, batch, rng)
    weights, state, opt_state = constrain((out.weights, out.state, out.opt_state))
    return out._replace(weights=weights, state=state, opt_state=opt_state)

  return step


def train_step_memory(model, loss_layer, optimizer, batch_signature, mesh=None, rng=None):
  """Per-device memory (bytes) of one compiled train step on `mesh`; nothing is run.

  Weights and optimizer state are laid out as the Loop lays them out (`place`), the
  batch as `shard_batch` would. Everything stays abstract, so this sizes steps far
  too big to run (e.g. a 2M-token sequence). Returns {'arguments', 'outputs', 'temp',
  'total'} from XLA's `memory_analysis()` of the SPMD program (one device's share).

    >>> train_step_memory(model, tl.CrossEntropyLoss(), optax.adam(1e-3),
    ...                   [ShapeDtype((8, 4096), jnp.int32)] * 2, make_mesh(seq=2))
  """
  from plait.supervised import train_step as step_lib  # pylint: disable=g-import-not-at-top
  rng = jax.random.key(0) if rng is None else rng
  n = model.n_in
  sig = tuple(batch_signature[:n])
  weights, state = jax.eval_shape(lambda: model.init(sig[0] if n == 1 else sig, rng))
  opt_state = jax.eval_shape(optimizer.init, weights)
  step = step_lib.make_train_step(model, loss_layer, optimizer)
  def abstract(tree, shardings):
    return jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
  if mesh is not None:
    step = keep_shardings(step, mesh)
    trees = (weights, state, opt_state)
    weights, state, opt_state = abstract(trees, layout(trees, mesh))
    batch = tuple(jax.ShapeDtypeStruct(s.shape, s.dtype,
                                       sharding=batch_sharding(mesh, len(s.shape)))
                  for s in batch_signature)
  else:
    batch = tuple(jax.ShapeDtypeStruct(s.shape, s.dtype) for s in batch_signature)
  compiled = jax.jit(step).lower(weights, state, opt_state, batch, rng).compile()
  analysis = compiled.memory_analysis()
  out = {'arguments': int(analysis.argument_size_in_bytes),
         'outputs': int(analysis.output_size_in_bytes),
         'temp': int(analysis.temp_size_in_bytes)}
  out['total'] = out['arguments'] + out['outputs'] + out['temp'] - int(
      getattr(analysis, 'alias_size_in_bytes', 0))
  return out
