"""Host-side checks of training batches (numpy; nothing goes to the device).

  >>> check_vocabulary(model, weights, first_batch, tokenizer)   # DataError if ids don't fit
  >>> non_finite_entries(batch)       # ['entry 2 (shape [4, 8]: 1 NaN/inf)']
  >>> count_tokens(batch)             # for tokens_per_second
"""
import numpy as np

from plait import shapes
from plait.layers import core
from plait.supervised.streams import DataError


def non_finite_entries(batch):
  """'entry i (shape, n NaN/inf)' for the floating batch entries holding NaN or inf."""
  bad = []
  for i, x in enumerate(batch):
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.complexfloating):
      n = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
      if n:
        bad.append(f'entry {i} (shape {list(x.shape)}: {n} NaN/inf)')
  return bad


def first_embedding(layer, weights):
  """(name, vocab size) of the first Embedding in the layer tree, or None."""
  if isinstance(layer, core.Embedding):
    return layer.name, int(np.shape(weights[0])[0])
  for i, sub in enumerate(layer.sublayers):
    if isinstance(weights, tuple) and i < len(weights):
      found = first_embedding(sub, weights[i])
      if found:
        return found
  return None


def check_vocabulary(model, weights, batch, tokenizer):
  """Token ids of the first batch and the tokenizer must fit the model's Embedding."""
  found = first_embedding(model, weights)
  if found is None:
    return
  name, vocab = found
  size = getattr(tokenizer, 'vocab_size', None)
  if isinstance(size, (int, np.integer)) and size > vocab:
    raise DataError(f'Loop: the tokenizer has vocab_size {size} but the model '
                    f'{model.name} embeds only {vocab} ids ({name}); build the model with '
                    f'vocab_size >= {size} or use the tokenizer it was trained with.')
  x = np.asarray(batch[0])
  if np.issubdtype(x.dtype, np.integer) and x.size:
    low, high = int(x.min()), int(x.max())
    if low < 0 or high >= vocab:
      raise DataError(f'Loop: the first training batch has token ids in [{low}, {high}] '
                      f'(inputs {shapes.describe(batch[0])}) but the model {model.name} '
                      f'embeds ids 0..{vocab - 1} ({name}); the data and the model use '
                      'different vocabularies.')


def count_tokens(batch):
  """Tokens in a batch: elements of the inputs if they are token ids, else examples."""
  x = batch[0]
  if np.issubdtype(np.asarray(x).dtype if not hasattr(x, 'dtype') else x.dtype, np.integer):
    return int(np.prod(np.shape(x)))
  return int(np.shape(x)[0]) if np.ndim(x) else 1
