"""Models: functions that build a layer from combinators, one file per family.

  >>> from plait.models import ReformerLM
  >>> model = ReformerLM(vocab_size=256, d_model=512, n_layers=6, mode='train')

Every model takes keyword hyperparameters and `mode` ('train', 'eval' or 'predict'; never
set from gin). The weights tree is the same in every mode, so a predict-mode model decodes
with the weights trained in train mode (see plait.supervised.decoding).
"""
from plait.models.bigbird import BigBirdEncoder, BigBirdLM
from plait.models.classifier import TwoTowerClassifier
from plait.models.image import ImagePerformerLM, ImageReformerLM, ImageTransformerLM
from plait.models.local import LocalEncoder
from plait.models.performer import PerformerEncoder, PerformerLM
from plait.models.reformer import ReformerEncoder, ReformerLM
from plait.models.transformer import TransformerEncoder, TransformerLM

__all__ = ['BigBirdEncoder', 'BigBirdLM', 'ImagePerformerLM', 'ImageReformerLM',
           'ImageTransformerLM', 'LocalEncoder', 'PerformerEncoder', 'PerformerLM',
           'ReformerEncoder', 'ReformerLM', 'TransformerEncoder', 'TransformerLM',
           'TwoTowerClassifier']
