"""Optional dependencies, imported on first use with an error naming the extra to install.

    tfds = require('tensorflow_datasets', extra='tfds', feature='plait.data.TFDS')
"""
import importlib

# module -> the pip distribution that provides it (when the names differ).
_DISTRIBUTIONS = {'tensorflow_datasets': 'tensorflow-datasets', 'skimage': 'scikit-image'}


def require(module, extra, feature):
  """Imports `module`, or raises ImportError saying `pip install 'plait[extra]'` brings it."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    if e.name is not None and e.name.split('.')[0] != module.split('.')[0]:
      raise   # the module is there but one of its own imports failed: not a missing extra
    dist = _DISTRIBUTIONS.get(module, module)
    raise ImportError(f'{feature} needs {dist}, which is not installed: '
                      f"pip install 'plait[{extra}]' (or pip install {dist}).") from e
