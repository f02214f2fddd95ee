"""One name for the loss in train and eval records ('loss'); older runs still read."""
import json

import gin
import pytest

import plait.layers as tl
from plait.supervised import metrics_log, plot, run_config, trainer, training
from plait.supervised.tasks import EvalTask
from tests.supervised import helpers
from tests.supervised.test_trainer import TINY_GIN


def test_train_and_eval_record_the_loss_under_one_name(tmp_path):
  evals = EvalTask(lambda: helpers.RandomTokens(seed=3), [tl.CrossEntropyLoss(), tl.Accuracy()])
  loop = training.Loop(helpers.tiny_lm(), helpers.lm_task(), eval_tasks=evals,
                       output_dir=tmp_path,
                       settings=helpers.settings(checkpoint_every=2, keep_best='eval/loss',
                                                 tensorboard=False))
  loop.run(4)
  loop.close()
  with open(tmp_path / metrics_log.METRICS_FILE) as f:
    records = [json.loads(line) for line in f]
  train = [r for r in records if r['split'] == 'train']
  evals = [r for r in records if r['split'] == 'eval']
  assert all('loss' in r for r in train)
  assert [sorted(set(r) - {'split', 'step'}) for r in evals] == [['Accuracy', 'loss']] * 2
  # The best checkpoint is ranked by the held-out loss.
  from plait.supervised import checkpoints  # pylint: disable=import-outside-toplevel
  best = checkpoints.best_checkpoint(str(tmp_path))
  assert best.metric == 'eval/loss' and best.value == min(r['loss'] for r in evals)


def test_only_the_training_losss_own_metric_is_renamed():
  ce, acc = tl.CrossEntropyLoss(), tl.Accuracy()
  names = metrics_log.eval_metric_names
  assert names([ce, acc], ['CrossEntropyLoss', 'Accuracy'], ce) == ['loss', 'Accuracy']
  assert names([ce, acc], ['CrossEntropyLoss', 'Accuracy'], tl.L2Loss()) == [
      'CrossEntropyLoss', 'Accuracy']
  assert names([ce], ['held_out_ce'], ce) == ['held_out_ce']   # a name the user chose stays
  with pytest.raises(ValueError, match="EvalTask 'eval'.*would all be recorded as 'loss'"):
    names([ce, acc], ['CrossEntropyLoss', 'loss'], ce)


def test_plot_draws_every_splits_loss_and_old_runs_eval_losses(tmp_path):
  records = [{'split': 'train', 'step': 1, 'loss': 3.0, 'step_time': 0.1},
             {'split': 'eval', 'step': 1, 'loss': 3.2, 'Accuracy': 0.1},
             {'split': 'eval', 'step': 2, 'CrossEntropyLoss': 3.1, 'Accuracy': 0.2}]  # older run
  assert [plot._loss_keys(r) for r in records] == [['loss'], ['loss'], ['CrossEntropyLoss']]  # pylint: disable=protected-access
  with open(tmp_path / metrics_log.METRICS_FILE, 'w') as f:
    f.write(''.join(json.dumps(r) + '\n' for r in records))
  assert plot.plot_metrics(str(tmp_path)).endswith('loss.png')


def test_keep_best_of_an_older_run_is_read_in_the_new_name():
  old = ("LoopSettings.keep_best = 'eval/CrossEntropyLoss'\n"
         "train.keep_best = 'eval_long/CrossEntropyLoss'\n")
  new, changes = run_config.upgrade(old)
  assert new == "LoopSettings.keep_best = 'eval/loss'\nLoopSettings.keep_best = 'eval_long/loss'\n"
  assert 'eval/CrossEntropyLoss -> eval/loss' in changes
  # Only the training loss's own metric was renamed.
  other = "LoopSettings.keep_best = 'eval/CrossEntropyLoss'\ntrain.loss = @L2Loss\n"
  assert run_config.upgrade(other) == (other, [])
  assert run_config.upgrade("LoopSettings.keep_best = 'eval/Accuracy'\n")[1] == []


def _train(output_dir, steps, keep_best):
  gin.clear_config()
  trainer.parse_config([], [TINY_GIN, "LoopSettings.progress = 'none'",
                            f"LoopSettings.keep_best = '{keep_best}'"])
  try:
    return trainer.train(str(output_dir), steps=steps, plot=False)
  finally:
    gin.clear_config()


def test_a_run_saved_with_keep_best_eval_crossentropyloss_resumes(tmp_path):
  _train(tmp_path, 2, 'eval/loss')
  path = tmp_path / run_config.CONFIG_FILE
  path.write_text(path.read_text().replace("'eval/loss'", "'eval/CrossEntropyLoss'"))
  assert _train(tmp_path, 4, 'eval/loss').step == 4   # not "a different config"
