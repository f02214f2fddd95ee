"""gin-configurable tiny model and data for reliability tests, with knobs for bad inputs."""
import gin
import numpy as np

import plait.layers as tl

VOCAB, LENGTH, BATCH = 32, 8, 4


class _Tokenizer:
  def __init__(self, vocab_size):
    self.vocab_size = vocab_size


class Tokens:
  """Deterministic LM batches (inputs, targets, weights) with get_state/set_state."""

  def __init__(self, seed=0, batch=BATCH, length=LENGTH, target_length=None, vocab=VOCAB,
               dtype='int32', nan_at=None, n_batches=None, tokenizer_vocab=None):
    self.i, self.seed, self.batch, self.length = 0, seed, batch, length
    self.target_length = target_length or length
    self.vocab, self.dtype, self.nan_at, self.n_batches = vocab, dtype, nan_at, n_batches
    self.tokenizer = _Tokenizer(tokenizer_vocab) if tokenizer_vocab else None

  def __iter__(self):
    return self

  def __next__(self):
    if self.n_batches is not None and self.i >= self.n_batches:
      raise StopIteration
    r = np.random.default_rng([self.seed, self.i])
    self.i += 1
    x = r.integers(1, self.vocab, (self.batch, self.length))
    y = r.integers(1, self.vocab, (self.batch, self.target_length)).astype(np.int32)
    w = r.uniform(0.5, 1.0, (self.batch, self.target_length)).astype(np.float32)
    if self.nan_at is not None and self.i == self.nan_at:
      w[0, 1] = np.nan
    return x.astype(self.dtype), y, w

  def get_state(self):
    return {'i': self.i}

  def set_state(self, state):
    self.i = state['i']


@gin.configurable(denylist=['mode'])
def rel_lm(d_model=16, vocab=VOCAB, mode='train'):
  del mode
  return tl.Serial(tl.Embedding(vocab, d_model), tl.Dense(d_model), tl.Relu(), tl.Dense(vocab))


@gin.configurable
def rel_tokens(**kwargs):
  return Tokens(**kwargs)


def gin_text(steps=4, checkpoint_every=2, keep_checkpoints=10):
  """A complete trainer config for the tiny model."""
  return f"""
import tests.reliability.fixtures
train.model = @rel_lm
train.inputs = @rel_tokens
train.optimizer = @Adam
Adam.clip_gradient_norm = 1.0
train.lr_schedule = @warmup
warmup.n_warmup_steps = 2
warmup.max_value = 0.01
train.steps = {steps}
LoopSettings.checkpoint_every = {checkpoint_every}
LoopSettings.keep_checkpoints = {keep_checkpoints}
LoopSettings.progress = 'lines'
LoopSettings.log_every = 1
train.plot = False
"""


def trainer_main(args):
  """plait-train's main(args) in-process, with no gin bindings before or after."""
  from plait.supervised import trainer  # pylint: disable=import-outside-toplevel
  gin.clear_config()
  try:
    return trainer.main(args)
  finally:
    gin.clear_config()
