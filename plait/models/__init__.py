"""Models: functions that build a layer from combinators, one file per family.

  >>> from plait.models import TransformerLM
  >>> model = TransformerLM(vocab_size=256, d_model=512, n_layers=6, mode='train')
"""
from plait.models.transformer import TransformerEncoder, TransformerLM

__all__ = ['TransformerEncoder', 'TransformerLM']
