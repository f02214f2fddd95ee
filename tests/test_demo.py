"""The demo shows the held-out loss: its tiny config evaluates, and it prints the loss."""
import json

import gin

from plait import demo, rl_free_configs
from plait.supervised import trainer


def test_the_demo_config_evaluates_and_ranks_by_held_out_loss():
  gin.clear_config()
  try:
    trainer.parse_config([rl_free_configs.path(demo.CONFIG)], [])
    assert gin.query_parameter('train.eval_inputs') is not None
    assert gin.query_parameter('LoopSettings.keep_best') == 'eval/loss'
  finally:
    gin.clear_config()


def test_loss_summary_gives_train_and_held_out_loss(tmp_path):
  records = ([{'split': 'train', 'step': s, 'loss': 4.0 - s / 100} for s in range(1, 101)]
             + [{'split': 'eval', 'step': 100, 'loss': 3.5, 'Accuracy': 0.2}])
  (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
  assert demo.loss_summary(str(tmp_path), window=10) == (
      'step 100: train loss 3.0450 (mean of the last 10 steps), held-out loss 3.5000 '
      '(eval at step 100)')
  assert demo.loss_summary(str(tmp_path / 'none')) is None
