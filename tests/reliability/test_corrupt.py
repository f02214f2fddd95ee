"""Damaged checkpoint files are detected, named and refused unless falling back is asked for."""
import json
import os
import shutil

import pytest

import plait.layers as tl
from plait.supervised import checkpoints, optimizers, schedules, training
from plait.supervised.loop_settings import LoopSettings
from plait.supervised.tasks import TrainTask
from tests.reliability import fixtures


def _loop(output_dir, print_fn=None, **settings):
  task = TrainTask(fixtures.Tokens(), tl.CrossEntropyLoss(), optimizers.Adam,
                   schedules.constant(1e-2))
  settings = {'progress': 'none', 'checkpoint_every': 2, 'async_checkpointing': False,
              'tensorboard': False, **settings}
  return training.Loop(fixtures.rel_lm(), task, output_dir=output_dir, print_fn=print_fn,
                       settings=LoopSettings(**settings))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A run with checkpoints at steps 2 and 4, and its per-step losses."""
  directory = str(tmp_path_factory.mktemp('trained') / 'run')
  loop = _loop(directory)
  loop.run(4)
  loop.close()
  losses = [r['loss'] for r in loop.history if r['split'] == 'train']
  return directory, losses


def _largest_array_file(step_dir):
  files = [os.path.join(r, n) for kind in checkpoints.KINDS
           for r, _, ns in os.walk(os.path.join(step_dir, kind)) for n in ns]
  return max(files, key=os.path.getsize)


def _truncate(path):
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def _flip_byte(path):
  with open(path, 'r+b') as f:
    f.seek(os.path.getsize(path) // 2)
    byte = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([byte[0] ^ 0xFF]))


DAMAGE = {
    'truncated_array_file': (_largest_array_file, _truncate, 'has .* bytes, expected'),
    'garbled_array_file': (_largest_array_file, _flip_byte, 'has the wrong checksum'),
    'deleted_array_file': (_largest_array_file, os.remove, 'is missing'),
    'garbled_metadata': (lambda d: os.path.join(d, 'meta', 'metadata'), _flip_byte,
                         'has the wrong checksum'),
    'deleted_manifest': (lambda d: os.path.join(d, checkpoints.MANIFEST_FILE), os.remove,
                         'is missing'),
}


@pytest.fixture(params=sorted(DAMAGE))
def damaged(request, trained, tmp_path):
  """A copy of the trained run whose checkpoint 4 is damaged; (dir, damaged file, pattern)."""
  directory = str(tmp_path / 'run')
  shutil.copytree(trained[0], directory)
  pick, damage, pattern = DAMAGE[request.param]
  path = pick(os.path.join(directory, 'checkpoints', '4'))
  damage(path)
  return directory, path, pattern


def test_damaged_checkpoint_is_refused_naming_the_file(damaged):
  directory, path, pattern = damaged
  metrics_before = open(os.path.join(directory, 'metrics.jsonl')).read()
  with pytest.raises(checkpoints.CorruptCheckpointError,
                     match=f'(?s)checkpoint 4 is damaged: {path} {pattern}.*'
                           'fallback_to_previous_checkpoint'):
    _loop(directory)
  assert sorted(os.listdir(os.path.join(directory, 'checkpoints'))) == ['2', '4']
  assert open(os.path.join(directory, 'metrics.jsonl')).read() == metrics_before
  with pytest.raises(checkpoints.CorruptCheckpointError, match='checkpoint 4 is damaged'):
    checkpoints.restore_model(directory, fixtures.rel_lm(), fixtures.Tokens().__next__()[0])


def test_fallback_resumes_from_previous_and_keeps_the_damaged_one(trained, tmp_path):
  directory = str(tmp_path / 'run')
  shutil.copytree(trained[0], directory)
  _flip_byte(_largest_array_file(os.path.join(directory, 'checkpoints', '4')))
  messages = []
  loop = _loop(directory, on_corrupt_checkpoint='previous', print_fn=messages.append,
               progress='lines', log_every=1000)
  assert loop.step == 2
  assert 'is damaged; moved checkpoint 4 to' in messages[0]
  loop.run(2)
  loop.close()
  assert [r['loss'] for r in loop.history if r['split'] == 'train'] == trained[1][2:]
  assert os.path.isdir(os.path.join(directory, 'corrupt_checkpoints', '4'))
  steps = [json.loads(l)['step'] for l in open(os.path.join(directory, 'metrics.jsonl'))]
  assert steps == [1, 2, 3, 4]


def test_fallback_refuses_when_no_checkpoint_is_intact(trained, tmp_path):
  directory = str(tmp_path / 'run')
  shutil.copytree(trained[0], directory)
  for step in ('2', '4'):
    _truncate(_largest_array_file(os.path.join(directory, 'checkpoints', step)))
  with pytest.raises(checkpoints.CheckpointError, match='no intact checkpoint is left'):
    _loop(directory, on_corrupt_checkpoint='previous')
  assert sorted(os.listdir(os.path.join(directory, 'corrupt_checkpoints'))) == ['2', '4']


def test_manifest_lists_every_data_file(trained):
  step_dir = os.path.join(trained[0], 'checkpoints', '2')
  with open(os.path.join(step_dir, checkpoints.MANIFEST_FILE)) as f:
    listed = set(json.load(f)['files'])
  on_disk = {os.path.relpath(os.path.join(r, n), step_dir) for r, _, ns in os.walk(step_dir)
             for n in ns}
  # orbax's own bookkeeping is written after the manifest (at and after the rename).
  assert listed == on_disk - {checkpoints.MANIFEST_FILE, '_CHECKPOINT_METADATA',
                              'commit_success.txt'}
  assert any(name.startswith('weights/') for name in listed) and 'meta/metadata' in listed
  assert any(name.startswith('opt_state/') for name in listed)


def test_cli_refuses_then_falls_back_with_the_flag(tmp_path, capsys):
  directory = str(tmp_path / 'run')
  config = tmp_path / 'run.gin'
  config.write_text(fixtures.gin_text(steps=4, checkpoint_every=2) +
                    "LoopSettings.progress = 'none'\n")
  args = [f'--config_file={config}', f'--output_dir={directory}']
  assert fixtures.trainer_main(args) == 0
  _truncate(_largest_array_file(os.path.join(directory, 'checkpoints', '4')))
  capsys.readouterr()
  assert fixtures.trainer_main(args + ['--steps=6']) == 1
  err = capsys.readouterr().err
  assert 'checkpoint 4 is damaged' in err and '--fallback_to_previous_checkpoint' in err
  assert fixtures.trainer_main(args + ['--steps=6', '--fallback_to_previous_checkpoint']) == 0
  assert sorted(os.listdir(os.path.join(directory, 'checkpoints'))) == ['2', '4', '6']
  assert os.listdir(os.path.join(directory, 'corrupt_checkpoints')) == ['4']
  steps = [json.loads(l)['step'] for l in open(os.path.join(directory, 'metrics.jsonl'))]
  assert steps == list(range(1, 7))
