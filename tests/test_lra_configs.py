"""The Long Range Arena configs (lra_<task>_<model>[_tiny].gin): one per task and model kind,
each building its model for its task's data (vocabulary, classes, padding, length), kept best
by held-out accuracy; the tiny ListOps and Pathfinder configs train through plait-train."""
import importlib
import json

import gin
import jax.numpy as jnp
import pytest

from plait import rl_free_configs
from plait.shapes import ShapeDtype
from plait.supervised import trainer

TASKS = ('listops', 'pathfinder', 'image', 'text', 'retrieval')
MODELS = ('transformer', 'reformer', 'performer', 'bigbird', 'local')
LRA = [n for n in rl_free_configs.names() if n.startswith('lra_')]


@pytest.fixture(autouse=True)
def _clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def test_every_task_has_a_config_per_model_kind_and_a_tiny_one():
  want = {f'lra_{t}_{m}{s}' for t in TASKS for m in MODELS for s in ('', '_tiny')}
  assert set(LRA) == want


def _signature(task):
  """The batch's inputs as the config binds them (pixel tasks: 32 x 32 = 1024 tokens)."""
  inputs = f'lra_{task}_inputs'
  batch = gin.query_parameter(f'{inputs}.batch_size')
  if task in ('pathfinder', 'image'):
    length = 32 * 32
  else:
    length = gin.query_parameter(f'{inputs}.max_length')
  shape = (batch, 2, length) if task == 'retrieval' else (batch, length)
  return ShapeDtype(shape, jnp.int32)


@pytest.mark.parametrize('name', LRA)
def test_config_builds_its_model_for_its_tasks_data(name):
  task = name.split('_')[1]
  data = importlib.import_module(f'plait.data.lra.{task}')
  trainer.parse_config([rl_free_configs.path(name)], [])
  model = gin.query_parameter('train.model').scoped_configurable_fn(mode='train')
  encoder = model.sublayers[1] if task == 'retrieval' else model
  encoder_name = encoder.name
  assert gin.query_parameter(f'{encoder_name}.vocab_size') == data.VOCAB_SIZE
  pad_id = gin.query_parameter(f'{encoder_name}.pad_id')
  assert pad_id == 0   # padding, or on pixel tasks black pixels as LRA (docs/lra.md)
  sig = _signature(task)
  logits = model.output_signature(sig)
  assert logits.shape == (sig.shape[0], data.N_CLASSES)
  assert gin.query_parameter('train.eval_inputs').scopes == ['eval']
  assert gin.query_parameter('eval/lra_%s_inputs.split' % task) == 'validation'
  # Pathfinder: octave positions, which let its models read a pixel's column (docs/lra.md).
  if task == 'pathfinder':
    assert gin.query_parameter(f'{encoder_name}.positional') == 'octave'


@pytest.mark.parametrize('name', [n for n in LRA if not n.endswith('_tiny')
                                  and n.split('_')[1] != 'retrieval'])
def test_each_evaluation_scores_the_whole_validation_split_once(name):
  """The Loop averages n_eval_batches batch means and the held-out splits repeat forever, so
  a last batch that ran past the split's end would count its first examples twice."""
  task = name.split('_')[1]
  data = importlib.import_module(f'plait.data.lra.{task}')
  trainer.parse_config([rl_free_configs.path(name)], [])
  batch = gin.query_parameter(f'eval/lra_{task}_inputs.batch_size')
  assert batch * gin.query_parameter('train.n_eval_batches') == data.SPLIT_SIZES['validation']


@pytest.mark.slow
@pytest.mark.parametrize('name', ['lra_listops_transformer_tiny', 'lra_pathfinder_reformer_tiny'])
def test_tiny_config_trains_evaluates_accuracy_and_keeps_the_best(name, tmp_path):
  trainer.parse_config([rl_free_configs.path(name)], [
      'train.steps = 4', 'LoopSettings.checkpoint_every = 2', 'train.n_eval_batches = 1',
      "LoopSettings.progress = 'none'"])
  loop = trainer.train(str(tmp_path))
  assert loop.step == 4
  evals = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  evals = [r for r in evals if r.get('split') == 'eval']
  assert [r['step'] for r in evals] == [2, 4]
  assert all(0.0 <= r['Accuracy'] <= 1.0 for r in evals)
  meta = list((tmp_path / 'checkpoints').glob('*/meta'))
  assert meta
