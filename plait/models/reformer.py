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
"""
from plait import layers as tl
from plait.models import blocks


def ReversibleDecoderBlock(d_model, d_ff, n_heads, attention_type='lsh', dropout=0.0,  # pylint: disable=invalid-name
                           max_len=2048, activation=tl.Gelu, ff_chunk_size=0, mode='train'):
  """One Reformer layer on the two residual streams (x1, x2) -> (y1, y2)."""
  attention = blocks.make_attention(attention_type, True, d_model=d_model, n_heads=n_heads,
                                    dropout=dropout, max_len=max_len, mode=mode)
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
               mode='train'):
  """Reversible decoder-only LM: token ids (B, L) -> next-token logits (B, L, vocab_size).

  attention_type: a name ('lsh', 'chunked', 'dense', ...), a causal attention layer
    constructor (e.g. functools.partial(LSHSelfAttention, causal=True, n_hashes=2)), or
    a list of those cycled over layers.
  ff_chunk_size: positions per feed-forward chunk (0 = all at once).
  axial_pos_shape, d_axial_pos_embs: axial positional encodings (prod(shape) positions).
  max_len: longest sequence, and the size of the predict-mode caches.
  """
  blocks.check_mode(mode, 'ReformerLM')
  layers = [
      ReversibleDecoderBlock(d_model, d_ff, n_heads, attention, dropout, max_len, activation,
                             ff_chunk_size, mode)
      for attention in blocks.attention_types_per_layer(attention_type, n_layers)]
  return tl.Serial(
      tl.ShiftRight(mode=mode),
      blocks.EmbeddingStack(vocab_size, d_model, max_len, dropout, axial_pos_shape,
                            d_axial_pos_embs, positional, mode),
      tl.Dup(),
      tl.ReversibleSerial(layers),
      tl.Concatenate(),
      tl.LayerNorm(),
      tl.Dropout(dropout, mode=mode),
      tl.Dense(vocab_size),
      name='ReformerLM')
