"""Host-side checks of training batches (numpy; nothing goes to the device).

  >>> check_tokenizer(model, weights, tokenizer)    # DataError if its ids don't fit the model
  >>> limits = id_limits(model, weights, output_signature, first_batch)   # {0: (256, ...)}
  >>> check_id_ranges(batch, limits, step=7)        # DataError naming step, entry and position
  >>> check_real_tokens(batch, real_token_limit(model), step=7)   # DataError: too many real
  >>> non_finite_entries(batch)       # ['entry 2 (shape [4, 8]: 1 NaN/inf)']
  >>> count_tokens(batch)             # for tokens_per_second
"""
import numpy as np

from plait import shapes
from plait.layers import core
from plait.layers.base import walk_layers
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
    return layer.name, int(np.shape(weights.embedding)[0])
  for i, sub in enumerate(layer.sublayers):
    if isinstance(weights, tuple) and i < len(weights):
      found = first_embedding(sub, weights[i])
      if found:
        return found
  return None


def check_tokenizer(model, weights, tokenizer):
  """The tokenizer's ids must fit the model's (first) Embedding."""
  found = first_embedding(model, weights)
  size = getattr(tokenizer, 'vocab_size', None)
  if found is None or not isinstance(size, (int, np.integer)):
    return
  name, vocab = found
  if size > vocab:
    raise DataError(f'Loop: the tokenizer has vocab_size {size} but the model '
                    f'{model.name} embeds only {vocab} ids ({name}); build the model with '
                    f'vocab_size >= {size} or use the tokenizer it was trained with.')


def id_limits(model, weights, output_signature, batch):
  """{batch entry: (n, what)}: the integer entries that must hold ids in [0, n).

  Entry 0, when integer, is token ids for the model's first Embedding. The entry after
  the model's inputs, when integer and shaped like the model's first output without its
  last axis (V), is class ids (targets) in [0, V). Out-of-range ids would otherwise pass
  silently on a device (an Embedding gathers a clamped or NaN row; a loss reads NaN).
  """
  limits = {}
  found = first_embedding(model, weights)
  if found is not None and _is_int(batch[0]):
    limits[0] = (found[1], f'token ids of the model {model.name} ({found[0]})')
  out = output_signature[0] if isinstance(output_signature, (tuple, list)) else output_signature
  n = model.n_in
  if len(batch) > n and _is_int(batch[n]) and tuple(np.shape(batch[n])) == tuple(out.shape[:-1]):
    limits[n] = (int(out.shape[-1]), f'classes of the model output {list(out.shape)}')
  return limits


def check_id_ranges(batch, limits, step):
  """DataError naming the step, the entry and the first bad position if an id is out of range."""
  for entry, (n, what) in limits.items():
    x = np.asarray(batch[entry])
    bad = (x < 0) | (x >= n)
    if not bad.any():
      continue
    position = tuple(int(i) for i in np.argwhere(bad)[0])
    raise DataError(
        f'Loop: the batch of step {step} has ids in [{int(x.min())}, {int(x.max())}] in entry '
        f'{entry} ({shapes.describe(x)}), e.g. {int(x[position])} at position '
        f'{list(position)}, but {what} must be in [0, {n - 1}]; the data and the model use '
        'different vocabularies.')


def real_token_limit(layer):
  """(pad_id, n, name) of the first layer in the tree with a `real_token_limit`, or None.

  A layer that keeps at most n tokens other than pad_id per row of the model's token ids
  (an encoder's `compact_to`, plait.models.compaction) says so by that attribute.
  """
  limits = (getattr(l, 'real_token_limit', None) for l in walk_layers(layer))
  return next((limit for limit in limits if limit is not None), None)


def check_real_tokens(batch, limit, step, which='the batch of step'):
  """DataError naming the step and the rows of batch[0] with more real tokens than `limit`."""
  if limit is None:
    return
  pad_id, n, name = limit
  x = np.asarray(batch[0])
  counts = np.count_nonzero(x != pad_id, axis=-1)
  over = np.argwhere(counts > n)
  if over.size:
    row = tuple(int(i) for i in over[0])
    raise DataError(
        f'Loop: {which} {step} has {len(over)} of {counts.size} sequences with more '
        f'than {n} tokens other than pad_id={pad_id}, e.g. {int(counts[row])} in row {list(row)} '
        f'({shapes.describe(x)}), but {name} keeps at most {n} (compact_to); nothing is dropped: '
        'raise compact_to, or set it to None.')


def _is_int(x):
  return np.issubdtype(np.asarray(x).dtype if not hasattr(x, 'dtype') else x.dtype, np.integer)


def count_tokens(batch):
  """Tokens in a batch: elements of the inputs if they are token ids, else examples."""
  x = batch[0]
  if np.issubdtype(np.asarray(x).dtype if not hasattr(x, 'dtype') else x.dtype, np.integer):
    return int(np.prod(np.shape(x)))
  return int(np.shape(x)[0]) if np.ndim(x) else 1
