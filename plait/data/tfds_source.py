"""TFDS datasets read through `tfds.data_source` (array_record): random access, no TensorFlow.

    source = plait.data.TFDS('imagenet_resized/64x64', split='train', keys=('image',))
    stream = plait.data.Serial(source, plait.data.Batch(32))

The data set must be prepared once in array_record format (that step may need TensorFlow; reading
it does not):  tfds build imagenet_resized/64x64 --file_format=array_record --data_dir=DIR
Needs the `tfds` extra: pip install 'plait[tfds]' (tensorflow-datasets and array_record).
"""
from plait.data.extras import require
from plait.data.pipeline import FromSequence, Source

_PREPARE = ('Prepare it once in array_record format (this step may need TensorFlow and, for '
            'ImageNet variants, the manually downloaded archives in DIR/downloads/manual):\n'
            '  tfds build {name} --file_format=array_record --data_dir=DIR\n'
            'or in Python: tfds.builder("{name}", data_dir=DIR).download_and_prepare('
            'file_format="array_record"); then pass data_dir=DIR.')


class TFDS(Source):
  """A TFDS split as a resumable source (epochs in a seeded random order by default).

  Args:
    name: TFDS name with optional config, e.g. 'imagenet_resized/64x64'.
    split: e.g. 'train', 'validation', 'train[:1000]'.
    data_dir: where the prepared data set lives (TFDS default: ~/tensorflow_datasets).
    keys: feature names to keep, in order; each example becomes a tuple of them (or the bare
      value for one key). None keeps the feature dict.
    shuffle, seed, repeat: see `FromSequence`.
  """

  def __init__(self, name, split='train', data_dir=None, keys=None, shuffle=True, seed=0,
               repeat=True):
    if not isinstance(name, str) or not name:
      raise ValueError(f'TFDS: name must be a dataset name like "imagenet_resized/64x64", got '
                       f'{name!r}.')
    self.name, self.split, self.data_dir = name, split, data_dir
    self.keys = tuple(keys) if keys is not None else None
    self._shuffle, self._seed, self._repeat = shuffle, seed, repeat
    self._data = None

  def data_source(self):
    """The underlying random-access tfds data source (opened on first use)."""
    if self._data is None:
      self._data = _open_data_source(self.name, self.split, self.data_dir)
    return self._data

  def __len__(self):
    return len(self.data_source())

  def _select(self, example):
    if self.keys is None:
      return example
    missing = [k for k in self.keys if k not in example]
    if missing:
      raise ValueError(f'TFDS {self.name}: no feature(s) {missing}; the examples have '
                       f'{sorted(example)}.')
    values = tuple(example[k] for k in self.keys)
    return values[0] if len(values) == 1 else values

  def open(self):
    return FromSequence(self.data_source(), shuffle=self._shuffle, seed=self._seed,
                        repeat=self._repeat, transform=self._select).open()

  def __repr__(self):
    return f'TFDS[{self.name}:{self.split}]'


def _open_data_source(name, split, data_dir):
  tfds = require('tensorflow_datasets', extra='tfds', feature='plait.data.TFDS')
  require('array_record', extra='tfds', feature='plait.data.TFDS')   # tfds.data_source reads it
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except tfds.core.registered.DatasetNotFoundError:
    raise ValueError(f'TFDS: unknown dataset name {name!r}. Check the spelling and config '
                     '(e.g. "imagenet_resized/64x64", "downsampled_imagenet/64x64"); '
                     'tfds.list_builders() lists the names.') from None
  # KeyError: this tfds' word for a data_dir without the prepared splits ("`splits` is empty")
  except (NotImplementedError, FileNotFoundError, AssertionError, OSError, KeyError) as e:
    where = data_dir or '~/tensorflow_datasets (the TFDS default)'
    reason = str(e).strip('"').splitlines()[0]   # a KeyError's text comes quoted
    raise ValueError(f'TFDS: {name!r} split {split!r} is not prepared (in array_record format) '
                     f'under {where}: {reason}\n'
                     + _PREPARE.format(name=name)) from None
