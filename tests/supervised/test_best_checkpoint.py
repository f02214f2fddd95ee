"""Decoding from the best checkpoint of a run by held-out metric (keep_best)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plait.data.tokenizers import CharTokenizer
from plait.supervised import checkpoints, decode_cli, decoding
from tests.models import helpers as model_helpers
from tests.supervised import helpers
from tests.supervised import test_decoding_cli as cli_run

LOSS = 'eval/CrossEntropyLoss'
SIG = model_helpers.token_signature(1, helpers.LENGTH)


def _save(directory, metrics_by_step, keep_best=LOSS, best_mode='min', keep_checkpoints=None,
          make_model=None, sig=SIG):
  """Saves a checkpoint per {step: metrics}, each with its own random weights.

  Returns {step: weights}.
  """
  model = make_model() if make_model else helpers.tiny_lm()
  checkpointer = checkpoints.Checkpointer(str(directory), keep_checkpoints=keep_checkpoints,
                                          keep_best=keep_best, best_mode=best_mode,
                                          async_save=False)
  saved = {}
  for step, metrics in metrics_by_step.items():
    saved[step] = model_helpers.random_weights(model, sig, seed=step)
    checkpointer.save(step, model, saved[step], model_helpers.initial_state(model, sig),
                      opt_state=(), rng=jax.random.key(0), data_position={}, metrics=metrics)
  checkpointer.close()
  return saved


def _assert_same(a, b):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _read_meta(directory, step):
  path = directory / checkpoints.CHECKPOINT_DIR / str(step) / 'meta' / 'metadata'
  return json.loads(path.read_text())


def test_save_records_the_ranking_metric_only_when_keep_best_is_set(tmp_path):
  _save(tmp_path / 'best', {1: {LOSS: 2.0}}, best_mode='max')
  assert _read_meta(tmp_path / 'best', 1)['best'] == {'metric': LOSS, 'mode': 'max'}
  _save(tmp_path / 'plain', {1: {LOSS: 2.0}}, keep_best=None)
  meta = _read_meta(tmp_path / 'plain', 1)
  assert 'best' not in meta and meta['metrics'] == {LOSS: 2.0}


def test_best_step_is_the_lowest_loss_not_the_latest(tmp_path):
  _save(tmp_path, {1: {LOSS: 3.0}, 2: {LOSS: 2.0}, 3: {LOSS: 2.5, 'loss': 1.0}})
  assert checkpoints.best_step(str(tmp_path)) == 2
  assert checkpoints.best_checkpoint(str(tmp_path)) == (2, LOSS, 'min', 2.0)


def test_restore_model_best_loads_that_steps_weights(tmp_path):
  saved = _save(tmp_path, {1: {LOSS: 3.0}, 2: {LOSS: 2.0}, 3: {LOSS: 2.5}})
  assert not np.array_equal(*(jax.tree_util.tree_leaves(saved[s])[0] for s in (2, 3)))
  weights, _, step = checkpoints.restore_model(str(tmp_path), helpers.tiny_lm(), SIG,
                                               step='best')
  assert step == 2
  _assert_same(weights, saved[2])
  weights, step = decoding.restore_weights(str(tmp_path), helpers.tiny_lm(), step='best')
  assert step == 2
  _assert_same(weights, saved[2])


def test_max_mode_picks_the_highest_value(tmp_path):
  _save(tmp_path, {1: {'eval/Accuracy': 0.2}, 2: {'eval/Accuracy': 0.6},
                   3: {'eval/Accuracy': 0.4}}, keep_best='eval/Accuracy', best_mode='max')
  assert checkpoints.best_checkpoint(str(tmp_path)) == (2, 'eval/Accuracy', 'max', 0.6)


def test_ties_go_to_the_later_step(tmp_path):
  _save(tmp_path, {1: {LOSS: 3.0}, 2: {LOSS: 2.0}, 3: {LOSS: 2.0}, 4: {LOSS: 2.5}})
  assert checkpoints.best_step(str(tmp_path)) == 3


def test_non_finite_values_never_count_as_best(tmp_path):
  _save(tmp_path / 'min', {1: {LOSS: 3.0}, 2: {LOSS: float('nan')}, 3: {LOSS: -float('inf')},
                           4: {LOSS: 3.5}, 5: {'loss': 1.0}})
  assert checkpoints.best_step(str(tmp_path / 'min')) == 1
  _save(tmp_path / 'max', {1: {'eval/Accuracy': 0.5}, 2: {'eval/Accuracy': float('inf')},
                           3: {'eval/Accuracy': float('nan')}, 4: {'eval/Accuracy': 0.1}},
        keep_best='eval/Accuracy', best_mode='max')
  assert checkpoints.best_step(str(tmp_path / 'max')) == 1


def test_pruning_keeps_the_best_despite_a_nan(tmp_path):
  """orbax keeps the latest and the best: a NaN must not take the best one's place."""
  _save(tmp_path, {1: {LOSS: 3.0}, 2: {LOSS: 2.0}, 3: {LOSS: float('nan')}, 4: {LOSS: 4.0},
                   5: {LOSS: 5.0}}, keep_checkpoints=1)
  assert checkpoints._complete_steps(str(tmp_path)) == [2, 5]  # pylint: disable=protected-access
  assert checkpoints.best_step(str(tmp_path)) == 2


def test_older_checkpoints_without_best_still_load_and_rank(tmp_path):
  """keep_best turned on mid-run: earlier checkpoints (no 'best' in meta) are ranked too."""
  saved = _save(tmp_path, {1: {LOSS: 1.0}}, keep_best=None)
  weights, _, step = checkpoints.restore_model(str(tmp_path), helpers.tiny_lm(), SIG)
  assert step == 1
  _assert_same(weights, saved[1])
  _save(tmp_path, {2: {LOSS: 2.0}, 3: {LOSS: 3.0}})
  assert checkpoints.best_step(str(tmp_path)) == 1


def test_no_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(checkpoints.CheckpointError, match='no complete checkpoint in .*train first'):
    checkpoints.best_step(str(tmp_path))
  with pytest.raises(checkpoints.CheckpointError, match='no complete checkpoint'):
    checkpoints.restore_model(str(tmp_path), helpers.tiny_lm(), SIG, step='best')


def test_run_without_keep_best_says_how_to_turn_it_on(tmp_path):
  _save(tmp_path, {1: {LOSS: 3.0}, 2: {LOSS: 2.0}}, keep_best=None)
  with pytest.raises(checkpoints.CheckpointError) as e:
    checkpoints.best_step(str(tmp_path))
  message = str(e.value)
  assert "LoopSettings.keep_best = 'eval/loss'" in message
  assert 'does not keep a best checkpoint' in message and '[1, 2]' in message


def test_metric_never_measured_names_it_and_the_steps(tmp_path):
  _save(tmp_path, {1: {'loss': 3.0}, 2: {}, 3: {LOSS: float('nan')}})
  with pytest.raises(checkpoints.CheckpointError) as e:
    checkpoints.best_step(str(tmp_path))
  assert f"no checkpoint in {tmp_path} has a finite value of '{LOSS}'" in str(e.value)
  assert '[1, 2, 3]' in str(e.value)


def test_unsaved_or_unknown_step_lists_the_saved_steps(tmp_path):
  _save(tmp_path, {1: {LOSS: 3.0}, 2: {LOSS: 2.0}})
  with pytest.raises(checkpoints.CheckpointError, match=r'step 5 .*available steps: \[1, 2\]'):
    decoding.restore_weights(str(tmp_path), helpers.tiny_lm(), step=5)
  with pytest.raises(checkpoints.CheckpointError, match=r'step 5 .*available steps: \[1, 2\]'):
    checkpoints.restore_model(str(tmp_path), helpers.tiny_lm(), SIG, step=5)
  with pytest.raises(checkpoints.CheckpointError, match="None \\(latest\\) or 'best'"):
    checkpoints.restore_model(str(tmp_path), helpers.tiny_lm(), SIG, step='last')


# ----- plait-decode --step=best -----
@pytest.fixture(scope='module')
def best_run(tmp_path_factory):
  """A run directory (config.gin, tokenizer) whose best checkpoint, 2, is not the latest, 3."""
  directory = tmp_path_factory.mktemp('best_run')
  tokenizer = CharTokenizer.from_text(cli_run.TEXT)
  saved = _save(directory, {1: {LOSS: 3.0}, 2: {LOSS: 2.0}, 3: {LOSS: 2.5}},
                make_model=lambda: cli_run._lm(tokenizer, 'train'),  # pylint: disable=protected-access
                sig=model_helpers.token_signature(2, 16))
  checkpoints.save_tokenizer(tokenizer, str(directory))
  (directory / 'config.gin').write_text(cli_run.CONFIG.format(vocab=tokenizer.vocab_size))
  return directory, tokenizer, saved


def _greedy(tokenizer, weights, prompt='the qu'):
  ids = decoding.autoregressive_sample(
      cli_run._lm(tokenizer, 'predict'), jnp.asarray(tokenizer.encode(prompt))[None],  # pylint: disable=protected-access
      temperature=0.0, max_length=12, eos_id=tokenizer.eos_id, weights=weights,
      vocab_size=tokenizer.vocab_size)
  return prompt + tokenizer.decode(ids[0])


def test_cli_step_best_decodes_with_the_best_checkpoint(best_run, capsys):
  directory, tokenizer, saved = best_run
  expected, latest = _greedy(tokenizer, saved[2]), _greedy(tokenizer, saved[3])
  assert expected != latest, 'the test needs checkpoints that decode differently'
  args = [f'--output_dir={directory}', '--prompt=the qu', '--max_length=12', '--temperature=0']
  assert decode_cli.main(args + ['--step=best']) == 0
  out, err = capsys.readouterr()
  assert out.rstrip('\n') == expected
  assert f'plait-decode: using checkpoint 2 (best {LOSS} 2)' in err
  assert decode_cli.main(args) == 0
  out, err = capsys.readouterr()
  assert out.rstrip('\n') == latest and 'using checkpoint 3 (latest)' in err


def test_cli_rejects_a_step_that_is_neither_a_number_nor_best(capsys):
  with pytest.raises(SystemExit) as e:
    decode_cli.main(['--output_dir=/nonexistent', '--step=last'])
  assert e.value.code == 2
  assert "argument --step: expected a checkpoint step (an integer) or 'best', got 'last'" in (
      capsys.readouterr().err)
  assert decode_cli.step_arg('best') == 'best' and decode_cli.step_arg('300') == 300


def test_cli_step_errors_exit_1_with_what_to_do(best_run, tmp_path, capsys):
  directory, tokenizer, _ = best_run
  assert decode_cli.main([f'--output_dir={directory}', '--step=9']) == 1
  assert 'available steps: [1, 2, 3]' in capsys.readouterr().err
  _save(tmp_path, {1: {LOSS: 2.0}}, keep_best=None,
        make_model=lambda: cli_run._lm(tokenizer, 'train'),  # pylint: disable=protected-access
        sig=model_helpers.token_signature(2, 16))
  (tmp_path / 'config.gin').write_text(cli_run.CONFIG.format(vocab=tokenizer.vocab_size))
  assert decode_cli.main([f'--output_dir={tmp_path}', '--step=best']) == 1
  assert "set LoopSettings.keep_best = 'eval/loss'" in capsys.readouterr().err
