"""Rules the whole attention family keeps (issue 23)."""
import io
import pathlib
import tokenize

import plait.layers.attention as attention_package

ATTENTION_DIR = pathlib.Path(attention_package.__file__).parent


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
