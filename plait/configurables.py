"""Registers plait's public names with gin, so configs can say `train.model = @ReformerLM`.

Importing this module registers (once; importing or calling `register_all()`
again is harmless):
  * every public layer of `plait.layers` (module `plait.layers`),
  * every name in `plait.models.__all__` (module `plait.models`),
  * every name in `plait.data.__all__` (module `plait.data`),
  * every name in `plait.data.lra.__all__` (module `plait.data.lra`),
  * the optimizers and learning-rate schedules of `plait.supervised`.
Lists are read when `register_all()` runs, so models and data stages added
later are picked up without editing this file. `mode` is never configurable:
the trainer passes mode='train'/'eval' itself.

Plain `import plait` does not import this module (it would pull in gin and the
data pipeline); `plait.supervised.trainer` does.

  >>> import plait.configurables
  >>> gin.parse_config('train.optimizer = @Adam\\nAdam.b2 = 0.98')
"""
import importlib
import inspect

import gin

_REGISTERED = set()  # (module, name) pairs already registered


def _takes_mode(obj):
  target = obj.__init__ if inspect.isclass(obj) else obj
  try:
    return 'mode' in inspect.signature(target).parameters
  except (TypeError, ValueError):
    return False


def register(obj, module, name=None):
  """Registers `obj` with gin under `module.name` unless already done; returns True if new."""
  name = name or obj.__name__
  if (module, name) in _REGISTERED:
    return False
  try:
    gin.external_configurable(obj, name=name, module=module,
                              denylist=['mode'] if _takes_mode(obj) else None)
  except ValueError as e:  # registered by someone else under the same name: fine
    if 'already' not in str(e).lower():
      raise
  _REGISTERED.add((module, name))
  return True


def _public_layers():
  from plait.layers import base  # pylint: disable=g-import-not-at-top
  layers = importlib.import_module('plait.layers')
  names = getattr(layers, '__all__', None) or [n for n in dir(layers) if not n.startswith('_')]
  out = []
  for n in names:
    obj = getattr(layers, n, None)
    if inspect.isclass(obj) and issubclass(obj, base.Layer) and obj not in (base.Layer,):
      out.append((n, obj))
    elif inspect.isfunction(obj) and n[:1].isupper():  # layer constructors: Relu(), ...
      out.append((n, obj))
  return out


def _names_in(module_name):
  try:
    module = importlib.import_module(module_name)
  except ImportError:
    return []
  names = getattr(module, '__all__', None)
  if names is None:  # no __all__ yet: its public callables, not submodules
    names = [n for n in dir(module) if not n.startswith('_')
             and not inspect.ismodule(getattr(module, n))]
  return [(n, getattr(module, n)) for n in names if callable(getattr(module, n, None))]


def register_all():
  """Registers everything listed in the module docstring; returns how many were new."""
  from plait.supervised import optimizers, schedules  # pylint: disable=g-import-not-at-top
  groups = [('plait.layers', _public_layers()),
            ('plait.models', _names_in('plait.models')),
            ('plait.data', _names_in('plait.data')),
            ('plait.data.lra', _names_in('plait.data.lra')),
            ('plait.supervised.optimizers', [(n, getattr(optimizers, n))
                                             for n in optimizers.__all__]),
            ('plait.supervised.schedules', [(n, getattr(schedules, n))
                                            for n in schedules.__all__])]
  return sum(register(obj, module, name) for module, items in groups for name, obj in items)


def registered_names():
  """All gin-registered configurable names, short and module-qualified (for typo hints)."""
  names = set()
  registry = getattr(gin.config, '_REGISTRY', None)
  selectors = getattr(registry, '_selector_map', {}) if registry is not None else {}
  for selector in selectors:
    names.add(selector)
    names.add(selector.rsplit('.', 1)[-1])
  for module, name in _REGISTERED:
    names.update((name, f'{module}.{name}'))
  return sorted(names)


register_all()
