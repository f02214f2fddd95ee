"""Tiny models and resumable data for training tests (no plait.models / plait.data)."""
import jax.numpy as jnp
import numpy as np

import plait.layers as tl
from plait.supervised import optimizers, schedules
from plait.supervised.loop_settings import LoopSettings
from plait.supervised.tasks import TrainTask

VOCAB, LENGTH, BATCH = 32, 8, 4


class RandomTokens:
  """Deterministic random LM batches (inputs, targets, weights) with get_state/set_state."""

  def __init__(self, seed=0, batch=BATCH, nan_at=None):
    self.i, self.seed, self.batch, self.nan_at = 0, seed, batch, nan_at

  def __iter__(self):
    return self

  def __next__(self):
    r = np.random.default_rng([self.seed, self.i])
    self.i += 1
    x = r.integers(1, VOCAB, (self.batch, LENGTH)).astype(np.int32)
    w = r.uniform(0.5, 1.0, (self.batch, LENGTH)).astype(np.float32)
    if self.nan_at is not None and self.i == self.nan_at:
      w[0, 0] = np.nan
    return x, x, w

  def get_state(self):
    return {'i': self.i}

  def set_state(self, state):
    self.i = state['i']


class CountCalls(tl.Layer):
  """x + count / 1000; state: the count of calls (a stand-in for a stateful layer, whose
  state every checkpoint carries)."""

  def forward(self, x, weights, state, rng):
    return x + state.astype(x.dtype) / 1000.0, state + 1

  def init_weights_and_state(self, input_signature, rng):
    return (), jnp.zeros((), jnp.int32)


def tiny_lm(d_model=16):
  return tl.Serial(tl.Embedding(VOCAB, d_model), tl.Dense(d_model), tl.Relu(), tl.Dense(VOCAB))


def lm_task(data=None, optimizer=optimizers.Adam, lr=1e-2):
  return TrainTask(data if data is not None else RandomTokens(), tl.CrossEntropyLoss(),
                   optimizer, schedules.constant(lr))


def settings(**kwargs):
  """LoopSettings for tests: no progress output, a checkpoint every 2 steps unless told."""
  kwargs.setdefault('progress', 'none')
  kwargs.setdefault('checkpoint_every', 2)
  return LoopSettings(**kwargs)


def train_losses(loop):
  return [r['loss'] for r in loop.history if r['split'] == 'train']
