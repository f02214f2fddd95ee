"""Multi-device checks run in a subprocess: `python -m tests.distributed.worker TASK ARGS`.

Each task prints one JSON line; the tests in this directory assert on it.
"""
import json
import sys

import jax
import numpy as np

import plait.layers as tl
from plait.supervised import distributed, optimizers, schedules
from plait.supervised.tasks import TrainTask

VOCAB = 64


class Tokens:
  """Deterministic random LM batches; `part=(i, n)` keeps rows i/n of the global batch."""

  def __init__(self, batch=4, length=16, part=(0, 1)):
    self.i, self.batch, self.length, self.part = 0, batch, length, part

  def __iter__(self):
    return self

  def __next__(self):
    r = np.random.default_rng([7, self.i])
    self.i += 1
    x = r.integers(1, VOCAB, (self.batch, self.length)).astype(np.int32)
    w = r.uniform(0.5, 1.0, x.shape).astype(np.float32)
    i, n = self.part
    rows = slice(i * self.batch // n, (i + 1) * self.batch // n)
    return x[rows], x[rows], w[rows]

  def get_state(self):
    return {'i': self.i}

  def set_state(self, state):
    self.i = state['i']


def stack_lm(d_model=64, max_len=64):
  """A one-block TransformerLM built from plait.layers (fast to compile)."""
  return tl.Serial(
      tl.ShiftRight(), tl.Embedding(VOCAB, d_model), tl.PositionalEncoding(max_len=max_len),
      tl.Residual(tl.LayerNorm(), tl.CausalAttention(d_model, n_heads=2)),
      tl.Residual(tl.LayerNorm(), tl.Dense(2 * d_model), tl.Relu(), tl.Dense(d_model)),
      tl.LayerNorm(), tl.Dense(VOCAB))


def model(name):
  from plait import models  # pylint: disable=g-import-not-at-top
  kwargs = dict(vocab_size=VOCAB, d_model=64, d_ff=128, n_heads=2, max_len=64, dropout=0.0)
  if name == 'stack':
    return stack_lm()
  if name == 'tiny':  # no attention: the quickest to compile
    return tl.Serial(tl.Embedding(VOCAB, 64), tl.Dense(64), tl.Relu(), tl.Dense(VOCAB))
  if name == 'transformer':
    return models.TransformerLM(n_layers=1, **kwargs)
  if name == 'reformer':
    return models.ReformerLM(n_layers=2, attention_type='lsh', **kwargs)
  raise ValueError(name)


def task(data):
  return TrainTask(data, tl.CrossEntropyLoss(), optimizers.Adam, schedules.constant(1e-2))


def loop(name, mesh, data=None, output_dir=None):
  from plait.supervised import training  # pylint: disable=g-import-not-at-top
  settings = training.LoopSettings(checkpoint_every=1000, progress='none', tensorboard=False,
                                   async_checkpointing=False)
  return training.Loop(model(name), task(data or Tokens()), mesh=mesh, output_dir=output_dir,
                       settings=settings)


def losses(lp):
  return [r['loss'] for r in lp.history if r['split'] == 'train']


def specs(tree):
  return sorted({str(getattr(x.sharding, 'spec', 'single')) for x in jax.tree_util.tree_leaves(tree)})


def data_parallel(names, n_steps=3):
  """Per-step losses on 1 device and on all devices (data axis), same global batch."""
  import jax  # pylint: disable=g-import-not-at-top
  out = {'devices': jax.device_count()}
  for name in names.split(','):
    one = loop(name, distributed.make_mesh(devices=jax.devices()[:1]))
    one.run(n_steps)
    many = loop(name, 'auto')
    many.run(n_steps)
    out[name] = {'one': losses(one), 'many': losses(many), 'mesh': dict(many.mesh.shape),
                 'batch_devices': len(many._place_batch(next(Tokens()))[0].sharding.device_set)}  # pylint: disable=protected-access
  return out


def sharding(n_steps=2):
  """Losses and weight layouts with 'data', 'model' and 'seq' sharding vs one device."""
  lps = {'none': loop('stack', None), 'data': loop('stack', 'auto'),
         'model': loop('stack', distributed.make_mesh(model=2)),
         'seq': loop('stack', distributed.make_mesh(seq=2))}
  out = {}
  for key, lp in lps.items():
    lp.run(int(n_steps))
    out[key] = {'losses': losses(lp), 'specs': specs(lp.weights),
                'mesh': dict(lp.mesh.shape) if lp.mesh is not None else None,
                'opt_specs': specs(lp.opt_state),
                'compiles': lp._train_step._cache_size()}  # pylint: disable=protected-access
  return out


def memory(length, d_model):
  """Per-device compiled train-step memory: 1 device vs 'model' and 'seq' sharding."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from plait.shapes import ShapeDtype  # pylint: disable=g-import-not-at-top
  lm, loss = stack_lm(int(d_model), int(length)), tl.CrossEntropyLoss()
  opt = optimizers.Adam(1e-3)
  sig = [ShapeDtype((2, int(length)), jnp.int32)] * 2 + [ShapeDtype((2, int(length)),
                                                                    jnp.float32)]
  one = jax.devices()[:1]
  return {'one': distributed.train_step_memory(lm, loss, opt, sig,
                                               distributed.make_mesh(devices=one)),
          'model': distributed.train_step_memory(lm, loss, opt, sig,
                                                 distributed.make_mesh(model=2)),
          'seq': distributed.train_step_memory(lm, loss, opt, sig,
                                               distributed.make_mesh(seq=2))}


def leaves(tree):
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def checkpoint(output_dir, expected_npz, out_npz):
  """Resumes a run from output_dir on a 'model'-sharded mesh, trains a step, saves again."""
  lp = loop('tiny', distributed.make_mesh(model=2), output_dir=output_dir)
  expected = np.load(expected_npz)
  restored = {'step': lp.step, 'equal': all(
      np.array_equal(a, expected[f'arr_{i}']) for i, a in enumerate(leaves(lp.weights))),
              'specs': specs(lp.weights)}
  lp.run(1)
  lp.close()
  np.savez(out_npz, *leaves(lp.weights))
  return {**restored, 'losses': losses(lp), 'final_step': lp.step}


def multiprocess(process_id, port, n_processes=2, n_steps=2):
  """One process of a multi-process job: initialize, all-gather, data-parallel steps."""
  process_id, n_processes = int(process_id), int(n_processes)
  joined = distributed.initialize(f'localhost:{port}', n_processes, process_id)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  gathered = multihost_utils.process_allgather(np.array([process_id * 10 + 1]))
  lp = loop('tiny', 'auto', data=Tokens(batch=8, part=(process_id, n_processes)))
  lp.run(int(n_steps))
  return {'joined': joined, 'process_index': jax.process_index(),
          'process_count': jax.process_count(), 'devices': jax.device_count(),
          'local_devices': jax.local_device_count(), 'gathered': np.ravel(gathered).tolist(),
          'mesh': dict(lp.mesh.shape), 'losses': losses(lp)}


def main(argv):
  name, args = argv[1], argv[2:]
  tasks = {'data_parallel': data_parallel, 'sharding': sharding, 'memory': memory,
           'checkpoint': checkpoint, 'multiprocess': multiprocess}
  result = tasks[name](*args)
  print(json.dumps(result), flush=True)


if __name__ == '__main__':
  main(sys.argv)
