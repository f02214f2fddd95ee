"""ReformerLM (Kitaev et al. 2020): reversible layers, chunked feed-forward, LSH attention.

  >>> model = ReformerLM(vocab_size=256, d_model=512, n_layers=6, max_len=65536,
  ...                    attention_type=['chunked', 'lsh'], ff_chunk_size=4096)

Structure: ShiftRight -> Embedding -> Dropout -> positional (axial option) -> Dup ->
ReversibleSerial of per-layer [ReversibleHalfResidual(LayerNorm, attention), Swap,
ReversibleHalfResidual(chunked feed-forward), Swap] -> Concatenate -> LayerNorm ->
Dropout -> Dense(vocab). Training memory for activations is that of one layer, whatever
n_layers, because the backward pass recomputes each layer's inputs from its outputs.
`attention_type` may be a list cycled over layers: the Reformer paper's enwik8 model
alternates local (chunked) and LSH attention.

ReformerEncoder is the classifier Long Range Arena calls Reformer: the shared encoder
(plait.models.classifier) with bidirectional LSH attention and padding masks, not reversible
(LRA's is not either; at LRA's lengths activations are small).
"""
import functools

from plait import layers as tl
from plait.layers.core import check_mode
from plait.models import blocks
from plait.models import classifier


def ReversibleDecoderBlock(d_model, d_ff, n_heads, attention_type='lsh', dropout=0.0,  # pylint: disable=invalid-name
                           max_len=2048, activation=tl.Gelu, ff_chunk_size=0, mode='train',
                           rotary=False):
  """One Reformer layer on the two residual streams (x1, x2) -> (y1, y2)."""
  attention = blocks.make_attention(attention_type, True, rotary, d_model=d_model,
                                    n_heads=n_heads, dropout=dropout, max_len=max_len,
                                    mode=mode)
  return [
      tl.ReversibleHalfResidual(tl.LayerNorm(), attention_layer=attention),
      tl.ReversibleSwap(),
      tl.ReversibleHalfResidual(
          blocks.FeedForwardBlock(d_model, d_ff, dropout, activation, ff_chunk_size, mode)),
      tl.ReversibleSwap(),
  ]


def ReformerLM(vocab_size=256, d_model=512, d_ff=2048, n_layers=6, n_heads=8, max_len=2048,  # pylint: disable=invalid-name
               dropout=0.1, attention_type='lsh', ff_chunk_size=0, axial_pos_shape=None,
               d_axial_pos_embs=None, positional='sinusoidal', activation=tl.Gelu,
               output_chunk_size=0, mode='train', scan_layers=False):
  """Reversible decoder-only LM: token ids (B, L) -> next-token logits (B, L, vocab_size).

  attention_type: a name ('lsh', 'chunked', 'dense', ...), a causal attention layer
    constructor (e.g. functools.partial(LSHSelfAttention, causal=True, n_hashes=2)), or
    a list of those cycled over layers.
  ff_chunk_size: positions per feed-forward chunk (0 = all at once).
  axial_pos_shape, d_axial_pos_embs: axial positional encodings (prod(shape) positions).
  max_len: longest sequence, and the size of the predict-mode caches.
  output_chunk_size: positions per chunk of the output head (Concatenate, LayerNorm,
    Dropout, Dense), 0 = all at once. Chunked, the head's float32 LayerNorm temporaries
    on (length, 2 * d_model) exist for one chunk at a time (at 2^20 tokens and d_model
    512 each is 4 GiB whole). It nests the head's weights in a Chunk.
  scan_layers: run the layers as one lax.scan over groups of one period of
    `attention_type` (forward), and the backward as one reverse scan: XLA compiles one
    group instead of n_layers (same weights tree and results; see docs/reversible.md).
  """
  check_mode(mode, 'ReformerLM')
  blocks.check_positional(positional, 'ReformerLM')
  layers = [
      ReversibleDecoderBlock(d_model, d_ff, n_heads, attention, dropout, max_len, activation,
                             ff_chunk_size, mode, rotary=positional == 'rotary')
      for attention in blocks.attention_types_per_layer(attention_type, n_layers)]
  return tl.Serial(
      tl.ShiftRight(mode=mode),
      blocks.EmbeddingStack(vocab_size, d_model, max_len, dropout, axial_pos_shape,
                            d_axial_pos_embs, positional, mode),
      tl.Dup(),
      tl.ReversibleSerial(layers, scan_layers=scan_layers),
      _output_head(vocab_size, dropout, output_chunk_size, mode),
      name='ReformerLM')


def _output_head(vocab_size, dropout, chunk_size, mode):
  """(y1, y2) -> logits: Concatenate, LayerNorm, Dropout, Dense; optionally by chunks."""
  head = [tl.Concatenate(), tl.LayerNorm(), tl.Dropout(dropout, mode=mode), tl.Dense(vocab_size)]
  if not chunk_size:
    return head
  flatten = tl.Fn('FlattenPositions', lambda y1, y2: (y1.reshape((-1, y1.shape[-1])),
                                                      y2.reshape((-1, y2.shape[-1]))), n_out=2)
  keep_first = tl.Select([0], n_in=2, name='KeepShape')
  return tl.Serial(
      tl.Branch(flatten, keep_first),   # [y1 (B*L, d), y2 (B*L, d), y1]: y1 only for its shape.
      tl.Chunk(tl.Serial(head), chunk_size),
      tl.Fn('UnflattenPositions', lambda logits, y1: logits.reshape(y1.shape[:-1] + (-1,))),
      name='ChunkedOutputHead')


def ReformerEncoder(vocab_size=256, n_classes=10, d_model=512, d_ff=2048, n_layers=6,  # pylint: disable=invalid-name
                    n_heads=8, max_len=2048, dropout=0.1, n_hashes=2, n_buckets=32,
                    chunk_len=64, n_chunks_before=1, n_chunks_after=0,
                    positional='sinusoidal', activation=tl.Gelu, pad_id=0, mode='train',
                    scan_layers=False, pooling='mean', head_d_ff=0, compact_to=None,
                    positional_init_std=None, normalize_keys=True):
  """Encoder classifier with bidirectional LSH attention: ids (B, L) -> logits (B, n_classes).

  n_hashes, n_buckets, chunk_len, n_chunks_before, n_chunks_after: see LSHKind (padding
  tokens are masked out of every bucket; lengths are padded to chunk_len automatically).
  normalize_keys: unit-RMS keys (True, the paper's) or the queries themselves (False, as
  LRA's Reformer); see LSHKind.
  pad_id, pooling, head_d_ff, n_classes=None, scan_layers, compact_to, positional_init_std:
  see TransformerEncoder (padding sorts after every bucket, so compaction is exact here too).

    >>> model = ReformerEncoder(vocab_size=20, n_classes=10, n_buckets=32, chunk_len=64)
  """
  check_mode(mode, 'ReformerEncoder')
  attention = functools.partial(tl.LSHSelfAttention, causal=False, n_hashes=n_hashes,
                                n_buckets=n_buckets, chunk_len=chunk_len,
                                n_chunks_before=n_chunks_before, n_chunks_after=n_chunks_after,
                                normalize_keys=normalize_keys)
  return classifier.encoder_classifier(
      'ReformerEncoder', vocab_size, n_classes, d_model, d_ff, n_layers, n_heads, max_len,
      dropout, attention, positional, activation, pad_id, mode, scan_layers, pooling, head_d_ff,
      compact_to=compact_to, positional_init_std=positional_init_std)
