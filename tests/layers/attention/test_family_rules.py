"""Rules the whole attention family keeps (issue 23)."""
import importlib
import inspect
import io
import pathlib
import pkgutil
import tokenize

import pytest

import plait.layers as tl
import plait.layers.attention as attention_package
from plait.layers.attention import AttentionKind, reference

ATTENTION_DIR = pathlib.Path(attention_package.__file__).parent


def _modules():
  """Every module of the attention package, sub-packages included."""
  names = pkgutil.walk_packages(attention_package.__path__, attention_package.__name__ + '.')
  return [attention_package] + [importlib.import_module(m.name) for m in names]


def _defined_here(module):
  """(name, object) for the classes and functions a module defines itself."""
  return [(n, o) for n, o in vars(module).items()
          if (inspect.isclass(o) or inspect.isfunction(o)) and o.__module__ == module.__name__]


def test_kinds_are_named_kind_and_layer_constructors_attention():
  kinds, layers = set(), set()
  for module in _modules():
    for name, obj in _defined_here(module):
      if inspect.isclass(obj) and issubclass(obj, AttentionKind):
        kinds.add(name)
      elif inspect.isfunction(obj) and name[:1].isupper():  # Layer constructors.
        layers.add(name)
  assert {'DotProductKind', 'ChunkedKind', 'LSHKind', 'FavorKind', 'BlockSparseKind'} <= kinds
  assert {'FavorAttention', 'CausalFavorAttention', 'LSHSelfAttention'} <= layers
  assert [k for k in kinds if not k.endswith('Kind')] == []
  assert [n for n in layers if not n.endswith('Attention')] == []
  assert not kinds & layers


def test_every_kind_overrides_exactly_one_of_attend_and_attend_batched():
  for name in attention_package.__all__:
    kind = getattr(attention_package, name)
    if inspect.isclass(kind) and issubclass(kind, AttentionKind) and kind is not AttentionKind:
      own = [m for m in ('attend', 'attend_batched')
             if getattr(kind, m) is not getattr(AttentionKind, m)]
      assert len(own) == 1, (name, own)


@pytest.mark.parametrize('methods', [(), ('attend', 'attend_batched')])
def test_a_kind_with_both_or_neither_attend_is_refused_when_defined(methods):
  body = {m: lambda self, *args: None for m in methods}
  with pytest.raises(TypeError, match='exactly one of `attend`'):
    type('BadKind', (AttentionKind,), body)


def test_oracles_live_only_in_reference():
  for name in reference.__all__:
    assert not hasattr(attention_package, name) and not hasattr(tl, name), name
  assert 'shared_qk_reference' in reference.__all__


def test_package_lists_its_public_names_without_wildcard_imports():
  source = (ATTENTION_DIR / '__init__.py').read_text()
  assert 'import *' not in source
  public = {n for n in vars(attention_package) if not n.startswith('_')
            and not inspect.ismodule(getattr(attention_package, n))}
  assert public == set(attention_package.__all__)


def _code_tokens(path):
  """(line, token) pairs of a Python file."""
  src = path.read_text()
  return [(t.start[0], t) for t in tokenize.generate_tokens(io.StringIO(src).readline)]


def test_the_only_minus_infinity_is_large_negative():
  """No -1e30, inf or finfo(...).min in attention code, except inside base.large_negative."""
  offenders = []
  for path in sorted(ATTENTION_DIR.rglob('*.py')):
    tokens = _code_tokens(path)
    for i, (line, t) in enumerate(tokens):
      where = f'{path.relative_to(ATTENTION_DIR)}:{line}: {t.string}'
      if t.type == tokenize.NUMBER and abs(float(t.string.rstrip('jJ'))) >= 1e10:
        offenders.append(where)
      elif t.type == tokenize.NAME and t.string == 'inf' and tokens[i - 1][1].string == '.':
        offenders.append(where)
      elif t.type == tokenize.STRING and t.string.strip('\'"').lower() in ('inf', '-inf'):
        offenders.append(where)
      elif t.type == tokenize.NAME and t.string == 'finfo' and path.name != 'base.py':
        offenders.append(where)
  assert not offenders, 'use base.large_negative(dtype) instead of:\n' + '\n'.join(offenders)
