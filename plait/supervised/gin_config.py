"""plait-train's gin configs: finding files, parsing with hints, and the effective config.

Light to import (gin and the standard library): plait's configurables, and with them JAX,
are imported by `parse_config`, so a CLI answers `--help` and a missing file at once.

  >>> path = find_config_file('reformer_duplication_tiny.gin')   # any cwd: shipped configs
  >>> parse_config([path], ['train.steps = 10'])                 # ConfigError if bad
  >>> text = effective_config()       # the bindings in force: files, then --config, then --steps

A config file is looked for as given (relative to the working directory), then in
`plait/rl_free_configs/` (also gin's search path, so `include 'x.gin'` finds shipped files).
"""
import difflib
import inspect
import os
import re
import tokenize

import gin
from gin import config_parser

from plait import rl_free_configs
from plait.supervised import run_config

SHIPPED_CONFIGS = str(rl_free_configs.DIRECTORY)
# Bindings every training config needs.
REQUIRED_BINDINGS = ('train.model', 'train.inputs')


class ConfigError(ValueError):
  """A config that cannot be used: missing file, gin error, or a value a configurable refused."""


def find_config_file(name):
  """The path of config `name`: as given, else in plait/rl_free_configs/ ('.gin' optional).

  Raises ConfigError listing every place looked at and the shipped config names.
  """
  candidates = [name]
  if not os.path.isabs(name):
    stem = name if name.endswith('.gin') else f'{name}.gin'
    candidates.append(os.path.join(SHIPPED_CONFIGS, stem))
  for candidate in candidates:
    if os.path.isfile(candidate):
      return candidate
  looked = ', '.join(os.path.abspath(c) for c in candidates)
  raise ConfigError(f'config file {name!r} not found (looked for {looked}); shipped configs: '
                    f'{", ".join(rl_free_configs.names())}.')


def _add_search_path():
  if SHIPPED_CONFIGS not in gin.config._LOCATION_PREFIXES:  # pylint: disable=protected-access
    gin.add_config_file_search_path(SHIPPED_CONFIGS)


# gin's words for an unknown configurable, and for an unknown parameter of a known one.
_UNKNOWN_CONFIGURABLE = re.compile(r"No configurable matching (?:reference )?'@?([^']+)'")
_UNKNOWN_PARAMETER = re.compile(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'")


def close_names(error_text):
  """Configurable or parameter names close to the unknown one in a gin error (for hints)."""
  from plait import configurables  # pylint: disable=g-import-not-at-top
  match = _UNKNOWN_CONFIGURABLE.search(error_text)
  if match:
    wanted = match.group(1)
    names = configurables.registered_names()
    return wanted, difflib.get_close_matches(wanted, names, n=8, cutoff=0.5)
  match = _UNKNOWN_PARAMETER.search(error_text)
  if match:
    params = _parameters(match.group(1))
    return match.group(2), difflib.get_close_matches(match.group(2), params, n=8, cutoff=0.4)
  return None, []


def _parameters(configurable_name):
  try:
    found = gin.config._REGISTRY.get_match(configurable_name)  # pylint: disable=protected-access
    target = found.wrapped
    target = target.__init__ if inspect.isclass(target) else target
    return [p for p in inspect.signature(target).parameters if p not in ('self', 'mode')]
  except Exception:  # pylint: disable=broad-except
    return []


def parse_config(config_files, bindings):
  """Parses gin files (found by `find_config_file`) and bindings; raises ConfigError.

  A gin error gets a 'did you mean' list; a file that is not UTF-8 text, no config file at
  all, or a config leaving `train.model` or `train.inputs` unbound is a ConfigError naming
  the file or the binding. Registers plait's configurables (imports JAX) first; `train` and
  `LoopSettings` are registered by `plait.supervised.trainer`, which re-exports this.
  """
  paths = [find_config_file(name) for name in config_files]
  for path in paths:
    _check_syntax(_read_text_file(path), path)
  for binding in bindings:
    _check_syntax(binding, f'--config={binding!r}')
  from plait import configurables  # pylint: disable=g-import-not-at-top
  configurables.register_all()
  _add_search_path()
  try:
    gin.parse_config_files_and_bindings(paths, bindings)
  except (ValueError, KeyError, OSError, SyntaxError, tokenize.TokenError) as e:  # KeyError:
    # an ambiguous name
    text = str(e)
    wanted, close = close_names(text)
    if wanted is not None:
      text += (f'\nConfigurables/parameters close to {wanted!r}: {", ".join(close)}' if close
               else f'\nNothing registered is close to {wanted!r}; see plait.configurables.')
      text += _renamed_hint(text)
    raise ConfigError(text) from e
  missing = [name for name in REQUIRED_BINDINGS if not is_bound(name)]
  if missing:
    start = ('no --config_file given and the bindings do' if not paths else 'the config does')
    raise ConfigError(f'{start} not bind {" or ".join(missing)} (e.g. --config_file='
                      'reformer_duplication_tiny.gin, or train.model = @ReformerLM and '
                      'train.inputs = @lm_inputs); shipped configs: '
                      f'{", ".join(rl_free_configs.names())}.')


def _renamed_hint(error_text):
  """Where a binding renamed since an earlier plait version went, if the error names one."""
  wanted = _UNKNOWN_PARAMETER.search(error_text)
  if wanted and wanted.group(1) == 'train' and wanted.group(2) in run_config.MOVED_TO_LOOP_SETTINGS:
    return f'\ntrain.{wanted.group(2)} is now LoopSettings.{wanted.group(2)}.'
  unknown = _UNKNOWN_CONFIGURABLE.search(error_text)
  new = unknown and run_config.RENAMED_CONFIGURABLES.get(unknown.group(1).rsplit('.', 1)[-1])
  return f'\n{unknown.group(1)} is now {new}.' if new else ''


def _read_text_file(path):
  """The text of `path`; ConfigError naming it if it is not UTF-8 text (gin would not name it)."""
  try:
    with open(path, 'rb') as f:
      return f.read().decode('utf-8')
  except UnicodeDecodeError as e:
    raise ConfigError(f'{path} is not a gin config (not UTF-8 text: {e.reason} at byte '
                      f'{e.start}).') from None


def _check_syntax(text, source):
  """ConfigError naming `source` if `text` is not gin syntax (checked before JAX is imported)."""
  try:
    run_config.check_syntax(text)
  except SyntaxError as e:
    raise ConfigError(f'{source} is not valid gin: {e.msg}' + (
        f' (line {e.lineno})' if e.lineno else '') + '.') from None
  except tokenize.TokenError as e:
    line = e.args[1][0] if len(e.args) > 1 else None
    raise ConfigError(f'{source} is not valid gin: {e.args[0]}' + (
        f' (line {line})' if line else '') + ' (an unclosed bracket or string?).') from None


def is_bound(selector):
  """Whether the parsed gin config binds `selector` (e.g. 'LoopSettings.compute_dtype')."""
  try:
    gin.query_parameter(selector)
    return True
  except ValueError:
    return False


def effective_config():
  """The parsed bindings as gin text: what the run uses beyond the code's defaults.

  Not gin's operative config, which also lists every default of every configurable called,
  including ones that had no effect (e.g. `ReformerLM.positional` when axial positions are
  used). Saved as output_dir/config.gin; `plait-train --config_file=<it>` reruns the run.
  """
  return gin.config_str()


def unused_bindings(ignore=()):
  """['scope/Name.param', ...]: parsed bindings no configurable call has used so far.

  gin applies a binding only when gin itself calls the configurable (through a reference
  such as `train.model = @TransformerEncoder`); a layer a model builds in its own code is
  not called by gin, so `PositionalEncoding.kind = 'learned'` would silently do nothing.
  A binding counts as used when its configurable was called in its scope (or a scope
  within it) without the caller passing that argument itself. Call after everything the
  config configures has been built; macros count as used when referenced (`%NAME`).
  `ignore`: full selectors (e.g. 'plait.supervised.LoopSettings') whose bindings are skipped.
  """
  calls = list(gin.config._OPERATIVE_CONFIG.items())  # pylint: disable=protected-access
  unused = []
  for (scope, selector), params in gin.config._CONFIG.items():  # pylint: disable=protected-access
    if selector in ignore:
      continue
    for param in params:
      if not any(called == selector and param in values and _within(scope, call_scope)
                 for (call_scope, called), values in calls):
        name = selector.rsplit('.', 1)[-1]
        if selector == 'gin.macro':   # `NAME = value`, never referenced as %NAME
          unused.append(f'{scope} (a macro)')
        else:
          unused.append(f'{scope}/{name}.{param}' if scope else f'{name}.{param}')
  return sorted(unused)


def _within(scope, call_scope):
  """Whether bindings of `scope` ('' or 'a/b') apply to a call made in `call_scope`."""
  return not scope or (call_scope + '/').startswith(scope + '/')


# ----- comparing configs by their values -----
class _Ref:
  """A configurable reference or macro as text, compared by its short name."""

  def __init__(self, text):
    self.text = text

  def __repr__(self):
    return self.text

  def __eq__(self, other):
    return isinstance(other, _Ref) and self.text == other.text

  def __hash__(self):
    return hash(self.text)


class _Recorder(config_parser.ParserDelegate):

  def configurable_reference(self, scoped_name, evaluate):
    scope, _, name = scoped_name.rpartition('/')
    short = name.rsplit('.', 1)[-1]
    return _Ref(f'@{scope + "/" if scope else ""}{short}{"()" if evaluate else ""}')

  def macro(self, name):
    return _Ref(f'%{name}')


def binding_values(text):
  """{'scope/Name.param': value} of gin `text` (module prefixes dropped; imports ignored)."""
  values = {}
  for statement in config_parser.ConfigParser(text, _Recorder()):
    if isinstance(statement, config_parser.BindingStatement):
      name = statement.selector.rsplit('.', 1)[-1]
      scope = f'{statement.scope}/' if statement.scope else ''
      values[f'{scope}{name}.{statement.arg_name}'] = statement.value
  return values


def default_value(key, missing=None):
  """The code's default of binding `key` ('scope/Name.param'), or `missing` if it has none."""
  name, _, param = key.rpartition('/')[-1].rpartition('.')
  try:
    target = gin.config._REGISTRY.get_match(name).wrapped  # pylint: disable=protected-access
    target = target.__init__ if inspect.isclass(target) else target
    default = inspect.signature(target).parameters[param].default
  except (KeyError, ValueError, TypeError, AttributeError):
    return missing
  if default is inspect.Parameter.empty:
    return missing
  if callable(default) and hasattr(default, '__name__'):  # e.g. activation=tl.Gelu: '@Gelu'
    return _Ref(f'@{default.__name__}')
  return default


def differences(old_text, new_text, ignore=()):
  """Sorted ['-key = old', '+key = new'] where the two configs' values differ.

  A binding present in one config only is compared with what is in force on the other side:
  the binding of an outer scope (`eval/lm_inputs.x` inherits `lm_inputs.x`), else the code's
  default (registered configurables). So a config saved with every default listed (gin's
  operative config, as older plait saved) equals one listing only what it set.
  """
  old, new = binding_values(old_text), binding_values(new_text)
  missing = object()
  lines = []
  for key in sorted(set(old) | set(new)):
    if key in ignore:
      continue
    before, after = _value(old, key, missing), _value(new, key, missing)
    if before is missing and after is missing or _same(before, after):
      continue
    if before is not missing:
      lines.append(f'-{key} = {before!r}')
    if after is not missing:
      lines.append(f'+{key} = {after!r}')
  return lines


def _value(values, key, missing):
  """The value in force for `key`: bound, else bound in an outer scope, else the default."""
  scopes, _, name = key.rpartition('/')
  while True:
    found = values.get(f'{scopes}/{name}' if scopes else name, missing)
    if found is not missing or not scopes:
      return found if found is not missing else default_value(key, missing)
    scopes = scopes.rpartition('/')[0]


def _same(a, b):
  try:
    return bool(a == b)
  except Exception:  # pylint: disable=broad-except  (e.g. arrays: ambiguous truth value)
    return False
