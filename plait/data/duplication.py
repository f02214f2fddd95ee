"""The duplication task of the Reformer paper (Kitaev et al. 2020, Table 2): copy a random string.

Every example is `0 w 0 w`: a separator 0, `length/2 - 1` random symbols w drawn uniformly
from 1..vocab_size-1, then the same again. The first half is unpredictable, the second a
copy, so the loss weights are 1 only on the second w: a model scores well only if its
attention finds, for each position of the copy, the matching position of the original.

    make = plait.data.duplication_inputs(length=16, vocab_size=8, batch_size=2, seed=0)
    inputs, targets, weights = next(make())
    # inputs[0]  == [0 5 3 1 7 2 2 6 | 0 5 3 1 7 2 2 6]   (for example)
    # weights[0] == [0 0 0 0 0 0 0 0 | 0 1 1 1 1 1 1 1]

inputs == targets, as in `lm_inputs`: models shift right internally (ShiftRight pads with 0,
the separator, so position 0 sees the same id whichever half it starts).
"""
import numpy as np

from plait.data.pipeline import Generate, Serial
from plait.data.stages import Batch


def duplication_example(rng, length, vocab_size):
  """One example `(tokens, tokens, weights)`: int32, int32, float32 arrays of shape (length,)."""
  half = length // 2
  w = rng.integers(1, vocab_size, size=half - 1, dtype=np.int32)
  first = np.concatenate([np.zeros((1,), np.int32), w])
  tokens = np.concatenate([first, first])
  weights = np.zeros((length,), np.float32)
  weights[half + 1:] = 1.0
  return tokens, tokens, weights


class DuplicationInputs:
  """A zero-argument callable returning a fresh resumable batch Pipeline (see `duplication_inputs`).

  Example i of the stream is drawn from `np.random.default_rng([seed, i])`, so the pipeline
  state is a counter and `set_state` is O(1).
  """

  def __init__(self, length, vocab_size, batch_size, seed):
    self.length, self.vocab_size = length, vocab_size
    self.batch_size, self.seed = batch_size, seed

  def _example(self, rng):
    return duplication_example(rng, self.length, self.vocab_size)

  def __call__(self):
    return Serial(Generate(self._example, seed=self.seed), Batch(self.batch_size))


def duplication_inputs(length=1024, vocab_size=128, batch_size=8, seed=0):
  """Batches `(inputs, targets, weights)` for the duplication task (gin-configurable).

  Args:
    length: sequence length, even and >= 4; each half is a separator 0 and length/2 - 1
      symbols (the paper: 1024, i.e. 511 symbols per half).
    vocab_size: symbols are 1..vocab_size-1 (chance accuracy 1/(vocab_size-1)); 0 separates.
    batch_size: examples per batch.
    seed: non-negative data seed; same seed, same batches. Use another seed for evaluation.

  Returns:
    A `DuplicationInputs`: call it with no arguments for a resumable Pipeline of numpy
    batches, int32 (B, L) inputs and targets and float32 (B, L) weights, 1 exactly on the
    second copy of w (positions length/2 + 1 .. length - 1).
  """
  if not isinstance(length, (int, np.integer)) or length < 4 or length % 2:
    raise ValueError(f'duplication_inputs: length must be an even int >= 4, got {length!r}.')
  if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 2:
    raise ValueError(f'duplication_inputs: vocab_size must be an int >= 2 (0 is the '
                     f'separator), got {vocab_size!r}.')
  if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
    raise ValueError(f'duplication_inputs: batch_size must be a positive int, got '
                     f'{batch_size!r}.')
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f'duplication_inputs: seed must be a non-negative int, got {seed!r}.')
  return DuplicationInputs(int(length), int(vocab_size), int(batch_size), int(seed))
