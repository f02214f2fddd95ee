"""Performer (Choromanski et al. 2021): Transformers with FAVOR+ linear attention.

  >>> lm = PerformerLM(vocab_size=256, d_model=512, n_layers=6, nb_features=256)
  >>> classifier = PerformerEncoder(vocab_size=256, n_classes=10, nb_features=256)

The same pre-norm blocks as the Transformer models, with `CausalFavorAttention` (LM) or
`FavorAttention` (encoder): O(L) time and memory, and in predict mode O(1) per decoded token
(the attention state is a running sum, not a KV cache).
"""
import functools

from plait import layers as tl
from plait.models import transformer


def _favor(constructor, nb_features, kernel, recompute_features):
  return functools.partial(constructor, nb_features=nb_features, kernel=kernel,
                           recompute_features=recompute_features)


def PerformerLM(vocab_size=256, d_model=512, d_ff=2048, n_layers=6, n_heads=8, max_len=2048,  # pylint: disable=invalid-name
                dropout=0.1, nb_features=256, kernel='softmax', ff_chunk_size=0,
                axial_pos_shape=None, d_axial_pos_embs=None, positional='sinusoidal',
                activation=tl.Gelu, mode='train', scan_layers=False, recompute_features=True):
  """Decoder-only LM with causal FAVOR+: token ids (B, L) -> logits (B, L, vocab_size).

  scan_layers: see TransformerLM. recompute_features: recompute the attention's feature
  maps in the backward pass (less memory) or keep them (faster); see tl.FavorKind.
  """
  return tl.Serial(
      transformer.TransformerLM(
          vocab_size, d_model, d_ff, n_layers, n_heads, max_len, dropout,
          _favor(tl.CausalFavorAttention, nb_features, kernel, recompute_features), ff_chunk_size,
          axial_pos_shape, d_axial_pos_embs, positional, activation, mode).sublayers,
      name='PerformerLM', scan_layers=scan_layers)


def PerformerEncoder(vocab_size=256, n_classes=10, d_model=512, d_ff=2048, n_layers=6,  # pylint: disable=invalid-name
                     n_heads=8, max_len=2048, dropout=0.1, nb_features=256, kernel='softmax',
                     positional='sinusoidal', activation=tl.Gelu, pad_id=0, mode='train',
                     scan_layers=False, pooling='mean', head_d_ff=0,
                     recompute_features=True, compact_to=None, positional_init_std=None):
  """Encoder classifier with bidirectional FAVOR+: token ids (B, L) -> logits (B, n_classes).

  pad_id, pooling, head_d_ff, n_classes=None, scan_layers, compact_to, positional_init_std:
  see TransformerEncoder.
  recompute_features: see PerformerLM.
  nb_features=None, kernel='relu': deterministic ReLU features, LRA's Performer (FavorKind).
  """
  return tl.Serial(
      transformer.TransformerEncoder(
          vocab_size, n_classes, d_model, d_ff, n_layers, n_heads, max_len, dropout,
          _favor(tl.FavorAttention, nb_features, kernel, recompute_features), positional,
          activation, pad_id, mode, pooling=pooling, head_d_ff=head_d_ff,
          compact_to=compact_to, positional_init_std=positional_init_std).sublayers,
      name='PerformerEncoder', scan_layers=scan_layers)
