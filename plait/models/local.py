"""Local attention: each chunk of positions attends to itself and its neighbouring chunks.

  >>> model = LocalEncoder(vocab_size=20, n_classes=10, chunk_len=128)

The baseline Long Range Arena calls Local Attention: the shared encoder classifier
(plait.models.classifier) with bidirectional `ChunkedSelfAttention`; O(L * chunk_len).
"""
import functools

from plait import layers as tl
from plait.layers.core import check_mode
from plait.models import classifier


def LocalEncoder(vocab_size=256, n_classes=10, d_model=512, d_ff=2048, n_layers=6,  # pylint: disable=invalid-name
                 n_heads=8, max_len=2048, dropout=0.1, chunk_len=128, n_chunks_before=1,
                 n_chunks_after=1, positional='sinusoidal', activation=tl.Gelu, pad_id=0,
                 mode='train', scan_layers=False, pooling='mean', head_d_ff=0,
                 positional_init_std=None):
  """Encoder classifier with local (chunked) attention: ids (B, L) -> logits (B, n_classes).

  Position i sees the chunks (of chunk_len positions) from n_chunks_before before its own to
  n_chunks_after after it. pad_id, pooling, head_d_ff, n_classes=None, scan_layers,
  positional_init_std: see TransformerEncoder.
  """
  check_mode(mode, 'LocalEncoder')
  attention = functools.partial(tl.ChunkedSelfAttention, chunk_len=chunk_len,
                                n_chunks_before=n_chunks_before, n_chunks_after=n_chunks_after)
  return classifier.encoder_classifier(
      'LocalEncoder', vocab_size, n_classes, d_model, d_ff, n_layers, n_heads, max_len, dropout,
      attention, positional, activation, pad_id, mode, scan_layers, pooling, head_d_ff,
      positional_init_std=positional_init_std)
