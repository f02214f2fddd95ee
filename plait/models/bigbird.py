"""BigBird (Zaheer et al. 2020): Transformers with block-sparse (ITC) attention.

  >>> classifier = BigBirdEncoder(vocab_size=256, n_classes=10, block_size=64)
  >>> lm = BigBirdLM(vocab_size=256, block_size=64, num_rand_blocks=3, max_len=4096)

Each layer gets its own random-block seed (its depth), so the random connections differ
between layers. Sequences must span enough blocks for the pattern (see block_sparse.py);
`dense_fallback=True` runs shorter ones densely under the same (then full) pattern.
"""
import functools

from plait import layers as tl
from plait.models import transformer


def _per_layer(constructor, n_layers, block_size, num_rand_blocks, dense_fallback):
  return [functools.partial(constructor, block_size=block_size, num_rand_blocks=num_rand_blocks,
                            seed=i, dense_fallback=dense_fallback) for i in range(n_layers)]


def BigBirdLM(vocab_size=256, d_model=512, d_ff=2048, n_layers=6, n_heads=8, max_len=2048,  # pylint: disable=invalid-name
              dropout=0.1, block_size=64, num_rand_blocks=3, dense_fallback=False,
              ff_chunk_size=0, axial_pos_shape=None, d_axial_pos_embs=None,
              positional='sinusoidal', activation=tl.Gelu, mode='train', scan_layers=False):
  """Decoder-only LM with causal block-sparse attention: ids (B, L) -> logits (B, L, vocab).

  Predict mode decodes with a `max_len` KV cache under the pattern of `max_len`
  positions, so it matches the full model run on `max_len` (padded) tokens.
  scan_layers: see TransformerLM; the layers' random blocks (their only difference)
    become per-layer inputs of the scan.
  """
  attention = _per_layer(tl.CausalBlockSparseAttention, n_layers, block_size, num_rand_blocks,
                         dense_fallback)
  return tl.Serial(
      transformer.TransformerLM(
          vocab_size, d_model, d_ff, n_layers, n_heads, max_len, dropout, attention,
          ff_chunk_size, axial_pos_shape, d_axial_pos_embs, positional, activation,
          mode).sublayers,
      name='BigBirdLM', scan_layers=scan_layers)


def BigBirdEncoder(vocab_size=256, n_classes=10, d_model=512, d_ff=2048, n_layers=6,  # pylint: disable=invalid-name
                   n_heads=8, max_len=4096, dropout=0.1, block_size=64, num_rand_blocks=3,
                   dense_fallback=False, positional='sinusoidal', activation=tl.Gelu,
                   pad_id=0, mode='train', scan_layers=False, pooling='mean', head_d_ff=0,
                   positional_init_std=None):
  """Encoder classifier with BigBird ITC attention: ids (B, L) -> class logits (B, n_classes).

  pad_id, pooling, head_d_ff, n_classes=None, scan_layers, positional_init_std: see
  TransformerEncoder.
  """
  attention = _per_layer(tl.BlockSparseAttention, n_layers, block_size, num_rand_blocks,
                         dense_fallback)
  return tl.Serial(
      transformer.TransformerEncoder(
          vocab_size, n_classes, d_model, d_ff, n_layers, n_heads, max_len, dropout, attention,
          positional, activation, pad_id, mode, pooling=pooling,
          head_d_ff=head_d_ff, positional_init_std=positional_init_std).sublayers,
      name='BigBirdEncoder', scan_layers=scan_layers)
