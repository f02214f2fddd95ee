"""Image models: LMs over flattened pixels (ImageNet 64x64: 12288 channel values of 0..255).

  >>> model = ImageReformerLM(d_model=1024, n_layers=12, attention_type='lsh')
  >>> weights, state = model.init(ShapeDtype((1, 64 * 64 * 3), jnp.int32))

An image (H, W, C) of uint8 values is flattened in raster order (row, column, channel)
to a sequence of H * W * C tokens with vocabulary 256. Positions use axial encodings
over (H, W, C), so the position table has H + W + C rows per axis block instead of
H * W * C. Completing an image is decoding with the top rows as the prompt.
"""
import numpy as np

from plait.models import performer, reformer, transformer


def default_axial_embs(d_model):
  """Splits d_model over (H, W, C) axes as 3/8, 3/8, 1/4 (the Reformer's 384/384/256 of 1024)."""
  a = 3 * d_model // 8
  return (a, a, d_model - 2 * a)


def _image_kwargs(image_shape, d_model, d_axial_pos_embs):
  image_shape = tuple(image_shape)
  return dict(vocab_size=256, d_model=d_model, max_len=int(np.prod(image_shape)),
              axial_pos_shape=image_shape,
              d_axial_pos_embs=tuple(d_axial_pos_embs or default_axial_embs(d_model)))


def ImageReformerLM(image_shape=(64, 64, 3), d_model=512, d_ff=2048, n_layers=6, n_heads=8,  # pylint: disable=invalid-name
                    dropout=0.0, attention_type='lsh', ff_chunk_size=0, d_axial_pos_embs=None,
                    mode='train', scan_layers=False):
  """ReformerLM over flattened pixels: ids (B, prod(image_shape)) -> logits (B, L, 256)."""
  return reformer.ReformerLM(
      d_ff=d_ff, n_layers=n_layers, n_heads=n_heads, dropout=dropout,
      attention_type=attention_type, ff_chunk_size=ff_chunk_size, mode=mode,
      scan_layers=scan_layers,
      **_image_kwargs(image_shape, d_model, d_axial_pos_embs))


def ImageTransformerLM(image_shape=(64, 64, 3), d_model=512, d_ff=2048, n_layers=6,  # pylint: disable=invalid-name
                       n_heads=8, dropout=0.0, attention_type='dense', ff_chunk_size=0,
                       d_axial_pos_embs=None, mode='train', scan_layers=False):
  """TransformerLM over flattened pixels (any attention_type, e.g. 'chunked')."""
  return transformer.TransformerLM(
      d_ff=d_ff, n_layers=n_layers, n_heads=n_heads, dropout=dropout,
      attention_type=attention_type, ff_chunk_size=ff_chunk_size, mode=mode,
      scan_layers=scan_layers,
      **_image_kwargs(image_shape, d_model, d_axial_pos_embs))


def ImagePerformerLM(image_shape=(64, 64, 3), d_model=512, d_ff=2048, n_layers=6, n_heads=8,  # pylint: disable=invalid-name
                     dropout=0.0, nb_features=256, ff_chunk_size=0, d_axial_pos_embs=None,
                     mode='train', scan_layers=False):
  """PerformerLM (causal FAVOR+) over flattened pixels."""
  return performer.PerformerLM(
      d_ff=d_ff, n_layers=n_layers, n_heads=n_heads, dropout=dropout, nb_features=nb_features,
      ff_chunk_size=ff_chunk_size, mode=mode, scan_layers=scan_layers,
      **_image_kwargs(image_shape, d_model, d_axial_pos_embs))
