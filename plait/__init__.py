"""plait: functional layer combinators on JAX (Reformer, Performer, BigBird, ...).

`import plait` is light: subpackages load on first use (`plait.layers`, `plait.models`,
`plait.supervised`, `plait.data`), and nothing here imports TensorFlow, torch or gym.
"""
import importlib

__version__ = '0.1.0'

_SUBMODULES = ('layers', 'models', 'supervised', 'data', 'shapes')


def __getattr__(name):
  if name in _SUBMODULES:
    return importlib.import_module(f'plait.{name}')
  raise AttributeError(f'module plait has no attribute {name!r}')
