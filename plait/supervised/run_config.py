"""A run's saved config.gin, read in today's names (runs saved by earlier plait versions too).

plait-train saves the operative config to `output_dir/config.gin`; resuming, plait-decode
and `plait.demo.load_run` read it back. Bindings renamed since a run was saved are
rewritten on reading (the file itself is never changed), so an older run still resumes
and decodes:

  >>> upgrade('train.checkpoint_every = 100\\ntrain.model = @PerformerLM')
  ('LoopSettings.checkpoint_every = 100\\ntrain.model = @PerformerLM',
   ['train.checkpoint_every -> LoopSettings.checkpoint_every'])

Config files a user passes with --config_file are not rewritten: an old name there is a
config error naming the new one.
"""
import dataclasses
import os
import re
import tokenize

from plait.supervised.loop_settings import LoopSettings

CONFIG_FILE = 'config.gin'

# The Loop's settings moved from train(...) to LoopSettings (issue 23).
MOVED_TO_LOOP_SETTINGS = tuple(f.name for f in dataclasses.fields(LoopSettings))
# Configurables renamed: old name -> new name.
RENAMED_CONFIGURABLES = {
    'Favor': 'FavorAttention',
    'CausalFavor': 'CausalFavorAttention',
}

_TRAIN_BINDING = re.compile(r'^(\s*)train\.(\w+)(\s*=.*)$')
# The held-out loss is recorded as '<task>/loss' (issue 21); it was named after the loss
# layer, e.g. 'eval/CrossEntropyLoss' (train.loss's default).
_KEEP_BEST = re.compile(r'''^(\s*LoopSettings\.keep_best\s*=\s*)(['"])(\w+)/(\w+)\2''')
_TRAIN_LOSS = re.compile(r'^\s*train\.loss\s*=\s*@(?:[\w.]+\.)?(\w+)', re.MULTILINE)


def upgrade(text):
  """(text in today's names, ['old -> new', ...]) for config.gin text of any plait version."""
  changes, lines = [], []
  loss_match = _TRAIN_LOSS.search(text)
  loss_name = loss_match.group(1) if loss_match else 'CrossEntropyLoss'
  for line in text.splitlines():
    match = _TRAIN_BINDING.match(line)
    if match and match.group(2) in MOVED_TO_LOOP_SETTINGS:
      indent, name, rest = match.groups()
      line = f'{indent}LoopSettings.{name}{rest}'
      changes.append(f'train.{name} -> LoopSettings.{name}')
    match = _KEEP_BEST.match(line)
    if match and match.group(4) == loss_name:
      task = match.group(3)
      line = f'{match.group(1)}{match.group(2)}{task}/loss{match.group(2)}{line[match.end():]}'
      changes.append(f'{task}/{loss_name} -> {task}/loss')
    for old, new in RENAMED_CONFIGURABLES.items():
      # A configurable name as a selector (`Favor.x = `), a reference (`@Favor`) or a
      # module-qualified name (`plait.layers.Favor`); not inside other names or strings.
      pattern = rf'(?<![\w\'"]){re.escape(old)}(?=[\s.(),\]]|$)'
      if re.search(pattern, line):
        line = re.sub(pattern, new, line)
        changes.append(f'{old} -> {new}')
    lines.append(line)
  return '\n'.join(lines) + ('\n' if text.endswith('\n') else ''), sorted(set(changes))


class DamagedConfigError(ValueError):
  """output_dir/config.gin is not readable gin (its checkpoints may well be intact)."""


def read(output_dir):
  """The text of `output_dir/config.gin` in today's names, or None if there is none.

  Raises DamagedConfigError (naming the file, the cause and how to recover) if the file
  is not UTF-8 text or not gin syntax: a damaged config is not "a different config".
  """
  path = os.path.join(output_dir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path, 'rb') as f:
      text = f.read().decode('utf-8')
    check_syntax(text)
  except (UnicodeDecodeError, SyntaxError, ValueError, tokenize.TokenError) as e:
    raise DamagedConfigError(
        f'{path} is damaged ({type(e).__name__}: {e}); the checkpoints beside it are not '
        f'touched. To resume, move it aside (mv {path} {path}.damaged) and rerun the same '
        'plait-train command: it is written again from that command (plait-decode needs '
        'it back first).') from None
  return upgrade(text)[0]


def check_syntax(text):
  """Raises if `text` is not gin syntax (nothing is bound or imported)."""
  from gin import config_parser  # pylint: disable=g-import-not-at-top

  class _Inert(config_parser.ParserDelegate):
    def configurable_reference(self, scoped_name, evaluate):
      return None

    def macro(self, name):
      return None

  for _ in config_parser.ConfigParser(text, _Inert()):
    pass
