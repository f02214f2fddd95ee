"""The dense baseline: TransformerLM (decoder-only) and TransformerEncoder (classifier).

  >>> model = TransformerLM(vocab_size=256, d_model=512, n_layers=6, mode='train')
  >>> weights, state = model.init(ShapeDtype((8, 1024), jnp.int32))
  >>> logits, state = model.pure_fn(tokens, weights, state, rng)    # (8, 1024, 256)

`attention_type` swaps the attention of every layer (a name like 'chunked', a layer
constructor, or a list cycled over layers), so the same function also builds local or
mixed-attention baselines.
"""
from plait import layers as tl
from plait.layers.core import check_mode
from plait.models import blocks
from plait.models import classifier


def TransformerLM(vocab_size=256, d_model=512, d_ff=2048, n_layers=6, n_heads=8,  # pylint: disable=invalid-name
                  max_len=2048, dropout=0.1, attention_type='dense', ff_chunk_size=0,
                  axial_pos_shape=None, d_axial_pos_embs=None, positional='sinusoidal',
                  activation=tl.Gelu, mode='train', scan_layers=False):
  """Decoder-only LM: token ids (B, L) -> next-token logits (B, L, vocab_size).

  Training sees ShiftRight(tokens), so output i predicts token i. In predict mode
  (decoding) ShiftRight is the identity and attention/positions keep caches in state
  sized by `max_len`; the weights tree is the same in every mode.
  scan_layers: run the repeated blocks as one lax.scan over their stacked weights
    (one block for XLA to compile; same weights tree and results; see docs/models.md).
  """
  check_mode(mode, 'TransformerLM')
  blocks.check_positional(positional, 'TransformerLM')
  decoder_blocks = [
      blocks.DecoderBlock(d_model, d_ff, n_heads, attention, dropout, max_len, activation,
                          ff_chunk_size, mode, rotary=positional == 'rotary')
      for attention in blocks.attention_types_per_layer(attention_type, n_layers)]
  return tl.Serial(
      tl.ShiftRight(mode=mode),
      blocks.EmbeddingStack(vocab_size, d_model, max_len, dropout, axial_pos_shape,
                            d_axial_pos_embs, positional, mode),
      decoder_blocks,
      tl.LayerNorm(),
      tl.Dense(vocab_size),
      name='TransformerLM', scan_layers=scan_layers)


def TransformerEncoder(vocab_size=256, n_classes=10, d_model=512, d_ff=2048, n_layers=6,  # pylint: disable=invalid-name
                       n_heads=8, max_len=2048, dropout=0.1, attention_type='dense',
                       positional='sinusoidal', activation=tl.Gelu, pad_id=0, mode='train',
                       scan_layers=False, pooling='mean', head_d_ff=0, compact_to=None,
                       positional_init_std=None):
  """Encoder classifier: token ids (B, L) -> class logits (B, n_classes).

  Tokens equal to `pad_id` are masked out of attention and of the mean pooling; pad_id=None:
  no mask, every token is attended to and pooled (LRA's pixel configs use 0: black pixels).
  pooling: 'mean' over real tokens, or 'cls' (a learned token put before the sequence).
  head_d_ff: 0 = a Dense(n_classes) head; > 0 = LRA's Dense(head_d_ff) -> Relu -> Dense.
  n_classes=None: no head, pooled features (B, d_model) (a TwoTowerClassifier tower).
  compact_to: None, or S: each sequence's real tokens are gathered, in order and with their
    positions, into S positions before the blocks (models/compaction.py): the same logits, for
    the work of length S (LRA Pathfinder: <= ~200 lit pixels of 1,024). A sequence with
    more than S real tokens gets NaN logits (plait-train stops before the step, naming it).
    Only attention that ignores where padding sits (dense, FAVOR+, LSH; not rotary: compactable).
  scan_layers: run the repeated blocks as one lax.scan over their stacked weights
    (one block for XLA to compile; same weights tree and results; see docs/models.md).
  positional_init_std: with positional='learned', the table's initial std (None: 1.0, as
    the token embedding; LRA starts learned positions at 0.02, see docs/lra.md).
  See plait.models.classifier for the structure every encoder shares.
  """
  check_mode(mode, 'TransformerEncoder')
  return classifier.encoder_classifier(
      'TransformerEncoder', vocab_size, n_classes, d_model, d_ff, n_layers, n_heads, max_len,
      dropout, attention_type, positional, activation, pad_id, mode, scan_layers, pooling,
      head_d_ff, compact_to, positional_init_std)
