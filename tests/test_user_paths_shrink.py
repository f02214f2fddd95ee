"""Each _tiny config is its full config shrunk by sizes only (same bindings otherwise)."""
import pytest

from tests import user_paths


def shrink_problems(name, full, tiny):
  """What makes `tiny` more than a size shrink of `full` (both {selector: value})."""
  problems = [f'{key}: bound only in the full config' for key in sorted(set(full) - set(tiny))]
  problems += [f'{key}: bound only in the tiny config' for key in sorted(set(tiny) - set(full))]
  for key in sorted(set(full) & set(tiny)):
    param = key.rsplit('.', 1)[-1]
    if (full[key] != tiny[key] and param not in user_paths.SIZE_PARAMETERS
        and (name, key) not in user_paths.NOT_SIZES_ALLOWED):
      problems.append(f'{key}: {full[key]} -> {tiny[key]} is not a size')
  return problems


@pytest.mark.parametrize('name', user_paths.FULL)
def test_tiny_config_is_the_full_config_shrunk_by_sizes_only(name):
  full, tiny = user_paths.bindings(name), user_paths.bindings(f'{name}_tiny')
  assert not shrink_problems(name, full, tiny)
  assert user_paths.size_overrides(name)  # it is smaller


def test_a_dropped_eval_or_a_changed_optimizer_is_not_a_shrink():
  full = {'train.eval_inputs': '@eval/lm_inputs', 'train.optimizer': '@Adafactor',
          'LoopSettings.compute_dtype': "'bfloat16'", 'ReformerLM.d_model': '256'}
  tiny = {'train.optimizer': '@Adam', 'LoopSettings.compute_dtype': "'bfloat16'",
          'ReformerLM.d_model': '64'}
  assert shrink_problems('x', full, tiny) == [
      'train.eval_inputs: bound only in the full config',
      'train.optimizer: @Adafactor -> @Adam is not a size']


@pytest.mark.parametrize('name', user_paths.FULL)
def test_every_full_config_evaluates_and_keeps_its_best_checkpoint(name):
  full = user_paths.bindings(name)
  assert full['train.eval_inputs'].startswith('@eval/')
  if name.startswith('lra_'):   # classifiers: LRA reports the held-out accuracy
    assert full['LoopSettings.keep_best'] == "'eval/Accuracy'"
    assert full['LoopSettings.best_mode'] == "'max'"
    return
  assert full['LoopSettings.keep_best'] == "'eval/loss'"
