"""Exact token compaction: gather a padded sequence's real tokens into a shorter one.

When every attention layer of an encoder ignores where the padding sits (dense softmax and
FAVOR+ attention: `AttentionKind.compactable`) and the pooling looks at real tokens only,
the logits depend on the real tokens alone. Moving them, in order, to the front of a
sequence of `size` positions then changes no output, and the encoder's work shrinks with
the length: LRA's Pathfinder images have at most ~200 lit (non-zero) pixels of 1,024.

  >>> front = CompactingBranch(EmbeddingStack(...), pad_id=0, size=256)
  >>> (x, mask), _ = front.pure_fn(tokens, weights, state, rng)   # (B, 1024) -> (B, 256, d)

Positional encodings are added before the gather, so each kept token keeps its position.
A sequence with more than `size` real tokens is never silently cut short: the training Loop
checks each batch on the host before the device sees it (a one-line DataError naming the step
and the row, through `real_token_limit`), and outside the Loop such a row's outputs are NaN.
(Under jit the counts are known only on the device; a host callback that raised there cost
1.7 ms of an 8.6 ms Pathfinder step on an H200, benchmarks/RESULTS.md section 22.)
"""
import jax
import jax.numpy as jnp
import numpy as np

from plait import layers as tl
from plait import shapes
from plait.models import blocks


def check_size(size, name):
  """Raises a clear ValueError unless `size` (compact_to) is a positive int."""
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
    raise ValueError(f'{name}: compact_to must be a positive int (positions kept per '
                     f'sequence), got {size!r}.')
  return int(size)


def compact_tokens(x, mask, size, name='compact_tokens'):
  """(x (B, L, d), mask (B, L) bool) -> (x (B, size, d), mask (B, size)): real tokens first.

  Each row's real tokens (mask True) go, in order, to positions 0..n-1; the rest of the
  row is padding (mask False). size >= L: the inputs are returned unchanged. A row with
  more than `size` real tokens comes out as NaN (all of it), so whatever is computed from
  it is NaN too, never a plausible number from part of the row.
  """
  if x.ndim != 3 or mask.shape != x.shape[:2]:
    raise ValueError(f'{name}: expected x (batch, length, d) and mask (batch, length), got '
                     f'x {tuple(x.shape)} and mask {tuple(mask.shape)}.')
  if size >= x.shape[1]:
    return x, mask
  mask = mask.astype(jnp.bool_)
  counts = jnp.sum(mask, axis=1, dtype=jnp.int32)
  order = jnp.argsort(jnp.logical_not(mask), axis=1, stable=True)[:, :size]
  kept = jnp.take_along_axis(x, order[..., None], axis=1)
  kept = jnp.where((counts > size)[:, None, None], jnp.nan, kept)   # too long: NaN, not cut
  return kept, jnp.arange(size)[None, :] < counts[:, None]


class CompactingBranch(tl.Branch):
  """Branch(embed, PaddingMask(pad_id)) whose (x, mask) outputs go through `compact_tokens`.

  A Branch in every other way: the same name, sublayers, weights, state and rng, so a
  model's weights tree and checkpoints are the same with and without compaction.

  Args:
    embed: tokens (B, L) -> x (B, L, d) (positional encodings included).
    pad_id: the padding id; other ids are real tokens.
    size: positions kept per sequence (compact_to).
    owner: the model's name, for error messages.
  """

  def __init__(self, embed, pad_id, size, owner='CompactingBranch'):
    super().__init__(embed, blocks.PaddingMask(pad_id))
    self._size, self._owner = check_size(size, owner), owner
    if embed.n_in != 1 or embed.n_out != 1:
      raise ValueError(f'{owner}: compaction needs an embedding of one input and one output, '
                       f'got n_in={embed.n_in}, n_out={embed.n_out}.')
    # Read by the training Loop, which checks every batch on the host (batch_checks).
    self.real_token_limit = (pad_id, self._size, owner)

  def forward(self, inputs, weights, state, rng):
    (x, mask), new_state = super().forward(inputs, weights, state, rng)
    return compact_tokens(x, mask, self._size, self._owner), new_state

  def init_with_signature(self, input_signature, rng):
    weights, state, (x_sig, mask_sig) = super().init_with_signature(input_signature, rng)
    out = jax.eval_shape(lambda x, m: compact_tokens(x, m, self._size),
                         *shapes.to_structs((x_sig, mask_sig)))
    return weights, state, shapes.from_structs(out)

  def __repr__(self):
    return super().__repr__().replace(self.name, f'{self.name} (compact_to={self._size})', 1)
