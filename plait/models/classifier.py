"""Sequence classifiers shared by every attention kind: one encoder body, pooling, heads,
and the two-tower model for document pairs (Long Range Arena's Retrieval).

  >>> model = TransformerEncoder(vocab_size=257, n_classes=2, pooling='cls', head_d_ff=1024)
  >>> logits, _ = model.pure_fn(tokens, weights, state, rng)          # (B, L) -> (B, 2)
  >>> pair = TwoTowerClassifier(encoder=TransformerEncoder, n_classes=2, d_ff=512)
  >>> logits, _ = pair.pure_fn(documents, weights, state, rng)        # (B, 2, L) -> (B, 2)

The encoders (TransformerEncoder, ReformerEncoder, PerformerEncoder, BigBirdEncoder,
LocalEncoder) differ only in their attention; all are `encoder_classifier` below:

  ids (B, L) -> Branch(EmbeddingStack, PaddingMask)  [x, mask]   (no mask when pad_id=None)
             -> compact_tokens                        (compact_to: real tokens only, exact)
             -> ClsToken                              (pooling='cls': L + 1 positions)
             -> n_layers pre-norm EncoderBlocks -> LayerNorm
             -> pooling: masked mean over real tokens, or the CLS position
             -> head: Dense(n_classes), or Dense(head_d_ff) -> Relu -> Dense(n_classes)

`n_classes=None` leaves the head out: the model returns pooled features (B, d_model), the
tower of `TwoTowerClassifier`.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp

from plait import layers as tl
from plait.layers import initializers
from plait.layers.base import walk_layers
from plait.models import blocks
from plait.models.compaction import CompactingBranch

POOLINGS = ('mean', 'cls')


class ClsTokenWeights(NamedTuple):
  """ClsToken's weights: the learned (d_model,) vector put before every sequence."""
  cls: jax.Array


class ClsToken(tl.Layer):
  """Prepends a learned vector to every sequence: (B, L, d) -> (B, L + 1, d).

  With `masked`, the layer takes and returns (x, mask) and the CLS position is always a real
  token (mask True); when L + 1 is odd a masked slot is appended too (L + 2), because cuDNN's
  masked attention kernels need an even length (the slot is padding: it changes no output).
  It comes after the positional encodings, so the token positions are those of the input and
  CLS is told apart by its learned vector alone (LRA adds a position to it; here no position
  is spent, so max_len stays the data's length).
  """

  def __init__(self, masked=True):
    super().__init__(n_in=2 if masked else 1, n_out=2 if masked else 1, name='ClsToken')
    self._masked = masked

  def forward(self, inputs, weights, state, rng):
    del rng
    x, mask = inputs if self._masked else (inputs, None)
    cls = jnp.broadcast_to(weights.cls.astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
    x = jnp.concatenate([cls, x], axis=1)
    if mask is None:
      return x, state
    mask = jnp.concatenate([jnp.ones((mask.shape[0], 1), mask.dtype), mask], axis=1)
    if x.shape[1] % 2:   # keep the length even for cuDNN: one more (masked) slot
      x = jnp.pad(x, ((0, 0), (0, 1), (0, 0)))
      mask = jnp.pad(mask, ((0, 0), (0, 1)))
    return (x, mask), state

  def init_weights_and_state(self, input_signature, rng):
    x_sig = input_signature[0] if self._masked else input_signature
    return ClsTokenWeights(initializers.normal(1.0)(rng, (x_sig.shape[-1],))), ()


def Pooling(pooling='mean', masked=True):  # pylint: disable=invalid-name
  """(x (B, L, d)[, mask (B, L)]) -> (B, d): masked mean over real tokens, or position 0.

  pooling: 'mean' (padding excluded when `masked`) or 'cls' (the ClsToken position).
  """
  if pooling not in POOLINGS:
    raise ValueError(f'Pooling: pooling must be one of {POOLINGS}, got {pooling!r}.')
  if pooling == 'cls':
    if masked:
      return tl.Fn('ClsPooling', lambda x, mask: x[:, 0])
    return tl.Fn('ClsPooling', lambda x: x[:, 0])
  if masked:
    return blocks.MaskedMean()
  return tl.Fn('Mean', lambda x: jnp.mean(x, axis=1))


def ClassifierHead(n_classes, head_d_ff=0):  # pylint: disable=invalid-name
  """(B, d) -> (B, n_classes): one Dense, or LRA's Dense(head_d_ff) -> Relu -> Dense."""
  if not head_d_ff:
    return [tl.Dense(n_classes)]
  return [tl.Dense(head_d_ff), tl.Relu(), tl.Dense(n_classes)]


def encoder_classifier(name, vocab_size, n_classes, d_model, d_ff, n_layers, n_heads,  # pylint: disable=too-many-arguments
                       max_len, dropout, attention_type, positional, activation, pad_id, mode,
                       scan_layers=False, pooling='mean', head_d_ff=0, compact_to=None,
                       positional_init_std=None):
  """The encoder classifier every attention kind shares (see the module docstring).

  pad_id: id masked out of attention and pooling (LRA's pixel configs: 0, black pixels);
    None: no mask is built, and attention runs unmasked.
  pooling: 'mean' or 'cls'. head_d_ff: 0 = Dense(n_classes) head, else LRA's MLP head.
  n_classes: None returns the pooled features (B, d_model) (a tower, no head).
  compact_to: None, or the positions kept per sequence after gathering its real tokens to
    the front (plait.models.compaction): the same logits for less work when most tokens are
    padding. Needs pad_id and attention that ignores where padding sits (dense, FAVOR+, LSH).
  positional_init_std: with positional='learned', the table's initial std (None: 1.0).
  """
  if pooling not in POOLINGS:
    raise ValueError(f'{name}: pooling must be one of {POOLINGS}, got {pooling!r}.')
  blocks.check_positional(positional, name)
  masked = pad_id is not None
  encoder_blocks = [
      blocks.EncoderBlock(d_model, d_ff, n_heads, attention, dropout, max_len, activation, mode,
                          use_mask=masked, rotary=positional == 'rotary')
      for attention in blocks.attention_types_per_layer(attention_type, n_layers)]
  if compact_to is not None:
    _check_compactable(name, pad_id, encoder_blocks)
  embed = blocks.EmbeddingStack(vocab_size, d_model, max_len, dropout, positional=positional,
                                mode=mode, positional_init_std=positional_init_std)
  if compact_to is not None:   # the same Branch, its outputs gathered: the same weights tree
    front = [CompactingBranch(embed, pad_id, compact_to, owner=name)]
  else:
    front = [tl.Branch(embed, blocks.PaddingMask(pad_id)) if masked else embed]   # [x, mask]
  if pooling == 'cls':
    front.append(ClsToken(masked))
  head = [] if n_classes is None else ClassifierHead(n_classes, head_d_ff)
  return tl.Serial(
      front,
      encoder_blocks,
      tl.LayerNorm(),                       # pops x only: [LayerNorm(x), mask]
      Pooling(pooling, masked),
      head,
      name=name, scan_layers=scan_layers)


def _check_compactable(name, pad_id, encoder_blocks):
  """Raises unless compaction is exact: a padding mask and compactable attention only."""
  if pad_id is None:
    raise ValueError(f'{name}: compact_to gathers the real tokens, so it needs pad_id (the id '
                     'of padding); pad_id=None marks no token as padding.')
  found = [l for block in encoder_blocks for l in walk_layers(block)
           if isinstance(l, tl.Attention)]
  wrong = sorted({a.name for a in found if not a.compactable})
  if wrong or len(found) != len(encoder_blocks):
    raise ValueError(
        f'{name}: compact_to is exact only when every layer\'s attention ignores where the '
        f'padding sits (dense, FAVOR+ or LSH attention without rotary positions: '
        f'Attention.compactable); '
        + (f'these do not: {wrong}.' if wrong else
           f'found {len(found)} plait attention layers in {len(encoder_blocks)} blocks.'))


def TwoTowerClassifier(encoder, n_classes=2, d_ff=512, mode='train'):  # pylint: disable=invalid-name
  """Classifies pairs of documents (B, 2, L) -> logits (B, n_classes), as LRA's Retrieval.

  Both documents go through the same tower (one set of weights): `encoder(n_classes=None,
  mode=mode)`, e.g. TransformerEncoder with its other settings bound, giving pooled features
  u, v (B, d). Then [u, v, u * v, u - v] -> Dense(d_ff) -> Relu -> Dense(d_ff // 2) -> Relu
  -> Dense(n_classes) (LRA's dual-encoder head).

    >>> model = TwoTowerClassifier(functools.partial(TransformerEncoder, d_model=128), 2)
  """
  if not callable(encoder):
    raise TypeError(f'TwoTowerClassifier: encoder must be an encoder constructor such as '
                    f'plait.models.TransformerEncoder, got {encoder!r}.')
  tower = encoder(n_classes=None, mode=mode)

  def as_rows(pairs):
    if pairs.ndim != 3 or pairs.shape[1] != 2:
      raise ValueError(f'TwoTowerClassifier: inputs must be document pairs (B, 2, L), got '
                       f'shape {pairs.shape}.')
    return pairs.reshape((pairs.shape[0] * 2, pairs.shape[2]))

  def combine(features):
    pair = features.reshape((features.shape[0] // 2, 2, features.shape[-1]))
    u, v = pair[:, 0], pair[:, 1]
    return jnp.concatenate([u, v, u * v, u - v], axis=-1)

  return tl.Serial(
      tl.Fn('DocumentsAsRows', as_rows),    # (B * 2, L): both documents in one batch
      tower,                                # (B * 2, d)
      tl.Fn('CombinePair', combine),        # (B, 4 d)
      tl.Dense(d_ff), tl.Relu(), tl.Dense(d_ff // 2), tl.Relu(), tl.Dense(n_classes),
      name='TwoTowerClassifier')
