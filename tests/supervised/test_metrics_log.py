"""metrics.jsonl survives kills: atomic rewrite on resume, torn or junk lines dropped."""
import json

import pytest

from plait.supervised import metrics_log

RECORDS = [{'split': 'train', 'step': s, 'loss': 1.0 / s} for s in range(1, 6)]


def _write(path, records, tail=b''):
  with open(path, 'wb') as f:
    for r in records:
      f.write((json.dumps(r) + '\n').encode())
    f.write(tail)


@pytest.mark.parametrize('tail', [b'{"split": "train", "st', b'\xa0\xff\x00junk\n'])
def test_a_torn_or_junk_tail_is_dropped_with_a_warning_naming_file_and_line(tmp_path, tail):
  path = tmp_path / 'metrics.jsonl'
  _write(path, RECORDS, tail)
  warnings = []
  assert metrics_log.read_metrics(tmp_path, warn=warnings.append) == RECORDS
  assert len(warnings) == 1 and str(path) in warnings[0] and '(line 6' in warnings[0]
  writer = metrics_log.MetricsWriter(str(tmp_path), resume_step=3, tensorboard=False)
  writer.write('train', 4, {'loss': 0.5})
  writer.close()
  assert metrics_log.read_metrics(tmp_path) == RECORDS[:3] + [{'split': 'train', 'step': 4,
                                                               'loss': 0.5}]


def test_a_kill_during_the_rewrite_leaves_every_record(tmp_path, monkeypatch):
  _write(tmp_path / 'metrics.jsonl', RECORDS)
  real_dumps, written = json.dumps, []

  def dies_after_two(record):
    if len(written) == 2:
      raise KeyboardInterrupt('killed while rewriting')
    written.append(record)
    return real_dumps(record)

  monkeypatch.setattr(metrics_log.json, 'dumps', dies_after_two)
  with pytest.raises(KeyboardInterrupt):
    metrics_log.MetricsWriter(str(tmp_path), resume_step=5, tensorboard=False)
  monkeypatch.undo()
  assert metrics_log.read_metrics(tmp_path) == RECORDS   # the old file, whole


def test_a_loop_resumes_over_a_torn_metrics_file(tmp_path, capsys):
  from plait.supervised import training  # pylint: disable=import-outside-toplevel
  from tests.supervised import helpers  # pylint: disable=import-outside-toplevel
  make = lambda: training.Loop(helpers.tiny_lm(), helpers.lm_task(), output_dir=tmp_path,
                               settings=helpers.settings())
  loop = make()
  loop.run(2)
  loop.close()
  with open(tmp_path / 'metrics.jsonl', 'ab') as f:
    f.write(b'{"split": "train", "step": 3, "lo')   # killed mid-write after the checkpoint
  loop = make()
  assert 'dropped 1 damaged line(s)' in capsys.readouterr().err
  loop.run(1)
  loop.close()
  steps = [r['step'] for r in metrics_log.read_metrics(tmp_path) if r['split'] == 'train']
  assert steps == [1, 2, 3]
