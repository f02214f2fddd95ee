"""lra.py over several sessions: runs resumed from --runs_dir, tables from earlier files."""
import json
import os
import subprocess
import sys

import pytest

from tests.benchmarks.scripts import BENCH, lra


def test_tables_from_earlier_files_name_their_devices_and_rows(tmp_path):
  rows = [{'task': 'listops', 'model': 'reformer', 'steps': 5000, 'schedule_steps': 5000,
           'val': 36.41, 'test': 34.45}]
  first, second = tmp_path / 'a.json', tmp_path / 'b.json'
  first.write_text(json.dumps({'device': 'NVIDIA H200', 'accuracy': rows, 'speed': []}))
  second.write_text(json.dumps({'device': 'NVIDIA H100', 'accuracy': [dict(rows[0], test=1.0)],
                                'speed': []}))
  out = lra('--tables_only', '--include', str(first), str(second), '--out',
            str(tmp_path / 'out')).stdout
  assert '# Long Range Arena, plait on NVIDIA H200 + NVIDIA H100' in out, out
  assert '| reformer | 34.45 (37.27)' in out, out   # the first file's row wins


@pytest.mark.slow
def test_a_run_in_runs_dir_resumes_in_the_next_session_and_is_never_deleted(tmp_path):
  """Session 1 stops at its time budget (after one step), session 2 finishes the schedule from
  that checkpoint and reports the evaluations of both parts; a third session with other flags
  is refused with one message and leaves the run as it was."""
  runs = tmp_path / 'runs'
  common = ['--smoke', '--accuracy_only', '--models', 'transformer', '--runs_dir', str(runs)]
  def row(out_dir):
    return json.loads((out_dir / 'lra.json').read_text())['accuracy'][0]
  lra(*common, '--steps', '6', '--budget_s', '0.01', '--out', str(tmp_path / 'part1'))
  assert row(tmp_path / 'part1')['steps'] == 1
  lra(*common, '--steps', '6', '--out', str(tmp_path / 'part2'))
  second = row(tmp_path / 'part2')
  assert second['steps'] == 6 and second['val'] is not None, second
  run_dir = runs / 'lra_listops_transformer_tiny'
  evals = [json.loads(l) for l in (run_dir / 'metrics.jsonl').read_text().splitlines()
           if '"eval"' in l]
  assert [e['step'] for e in evals] == [1, 6], evals
  before = sorted(os.listdir(run_dir / 'checkpoints'))
  refused = lra(*common, '--steps', '8', '--out', str(tmp_path / 'part3'), check=False)
  assert refused.returncode == 1, refused.stderr[-2000:]
  assert 'lra.py: --runs_dir:' in refused.stderr and 'Traceback' not in refused.stderr
  assert '\n-LoopSettings.checkpoint_every = 6\n+LoopSettings.checkpoint_every = 8\n' in refused.stderr
  assert '--overwrite' not in refused.stderr and 'In call to' not in refused.stderr
  assert sorted(os.listdir(run_dir / 'checkpoints')) == before


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_keeps_its_checkpoint_and_exits_with_one_message(tmp_path):
  """A time limit around the script (`timeout` sends SIGTERM): the Loop saves and stops; the
  script says so and exits 1 instead of scoring a run that never evaluated."""
  import signal  # pylint: disable=import-outside-toplevel
  import time  # pylint: disable=import-outside-toplevel
  runs = tmp_path / 'runs'
  proc = subprocess.Popen(
      [sys.executable, str(BENCH / 'lra.py'), '--smoke', '--accuracy_only', '--models',
       'transformer', '--steps', '100000', '--runs_dir', str(runs), '--out',
       str(tmp_path / 'out')], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  metrics = runs / 'lra_listops_transformer_tiny' / 'metrics.jsonl'
  deadline = time.time() + 300
  while not (metrics.exists() and metrics.read_text().strip()) and time.time() < deadline:
    time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 1, stderr[-3000:]
  assert 'lra.py: lra_listops_transformer_tiny stopped by SIGTERM at step' in stderr, stderr
  assert 'Traceback' not in stderr
  assert os.listdir(runs / 'lra_listops_transformer_tiny' / 'checkpoints')


def test_config_bindings_reach_the_run_its_row_and_the_table(tmp_path):
  """--config adds a gin binding to every run: it is in the run's config.gin (so a resumed run
  is compared with it), in the row, and footnoted in the table; a bad one is one message."""
  binding = "TransformerEncoder.positional = 'learned'"
  common = ['--smoke', '--accuracy_only', '--models', 'transformer', '--steps', '1']
  out = lra(*common, '--config', binding, '--out', str(tmp_path / 'a')).stdout
  row = json.loads((tmp_path / 'a' / 'lra.json').read_text())['accuracy'][0]
  assert row['bindings'] == [binding], row
  config = (tmp_path / 'a' / 'runs' / 'lra_listops_transformer_tiny' / 'config.gin').read_text()
  assert binding in config, config
  assert f'transformer on listops: trained with {binding}' in out, out
  bad = lra(*common, '--config', 'TransformerEncoder.positionl = 1', '--out',
            str(tmp_path / 'b'), check=False)
  assert bad.returncode == 1 and 'Traceback' not in bad.stderr, bad.stderr[-2000:]
  assert "doesn't have a parameter named 'positionl'" in bad.stderr, bad.stderr[-2000:]
  unused = lra(*common, '--config', "PositionalEncoding.kind = 'learned'", '--out',
               str(tmp_path / 'c'), check=False)   # a layer inside the model: no effect
  assert unused.returncode == 1 and 'Traceback' not in unused.stderr, unused.stderr[-2000:]
  assert 'would have no effect: PositionalEncoding.kind' in unused.stderr, unused.stderr[-2000:]


@pytest.mark.slow
def test_sigterm_to_the_parent_stops_its_jobs_and_starts_no_more(tmp_path):
  """--jobs 2 of 4 runs: a SIGTERM to lra.py reaches both running jobs, which exit; the other
  two never start; lra.py exits 143 saying so."""
  import signal, time  # pylint: disable=g-import-not-at-top,multiple-imports
  out = tmp_path / 'out'
  parent = subprocess.Popen(
      [sys.executable, str(BENCH / 'lra.py'), '--smoke', '--accuracy_only', '--jobs', '2',
       '--models', 'transformer', 'performer', 'local', 'bigbird', '--steps', '100000',
       '--out', str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  logs = out / 'jobs'
  deadline = time.time() + 300
  while time.time() < deadline and len(list(logs.glob('*.log')) if logs.exists() else []) < 2:
    time.sleep(0.5)
  children = [int(pid) for pid in subprocess.run(['pgrep', '-P', str(parent.pid)],
                                                 capture_output=True, text=True).stdout.split()]
  assert len(children) == 2, children
  time.sleep(5)
  parent.send_signal(signal.SIGTERM)
  _, err = parent.communicate(timeout=300)
  assert parent.returncode == 143, err[-2000:]
  assert 'SIGTERM: the running jobs were stopped' in err, err[-2000:]
  assert all(not os.path.exists(f'/proc/{pid}') for pid in children), children
  assert sorted(p.name for p in logs.glob('*.log')) == ['listops_performer.log',
                                                        'listops_transformer.log']


def test_splits_dir_keeps_the_generated_splits_for_the_next_run(tmp_path):
  splits = tmp_path / 'splits'
  common = ['--smoke', '--accuracy_only', '--models', 'transformer', '--steps', '1',
            '--splits_dir', str(splits), '--config', 'lra_listops_inputs.n_examples = 64',
            '--config', 'eval/lra_listops_inputs.n_examples = 16']
  lra(*common, '--out', str(tmp_path / 'a'))
  names = sorted(p.name for p in splits.iterdir())
  assert names == ['listops_train_seed0_n64_len20-100_v1.npz',
                   'listops_validation_seed0_n16_len20-100_v1.npz'], names
  stamps = {p.name: p.stat().st_mtime_ns for p in splits.iterdir()}
  lra(*common, '--out', str(tmp_path / 'b'))
  assert {p.name: p.stat().st_mtime_ns for p in splits.iterdir()} == stamps   # read, not made


@pytest.mark.slow
def test_splits_dir_with_jobs_makes_the_splits_once_before_the_jobs_start(tmp_path):
  splits, out = tmp_path / 'splits', tmp_path / 'out'
  lra('--smoke', '--accuracy_only', '--models', 'transformer', 'performer', '--jobs', '2',
      '--steps', '1', '--splits_dir', str(splits), '--out', str(out),
      '--config', 'lra_listops_inputs.n_examples = 64',
      '--config', 'eval/lra_listops_inputs.n_examples = 16')
  rows = json.loads((out / 'lra.json').read_text())['accuracy']
  assert sorted(r['model'] for r in rows) == ['performer', 'transformer'], rows
  assert all('error' not in r for r in rows), rows
  jobs_started = (out / 'jobs').stat().st_mtime_ns
  made = {p.name: p.stat().st_mtime_ns for p in splits.iterdir()}
  assert sorted(made) == ['listops_train_seed0_n64_len20-100_v1.npz',
                          'listops_validation_seed0_n16_len20-100_v1.npz'], made
  assert all(t <= jobs_started for t in made.values()), (made, jobs_started)


def test_the_documented_table_rebuild_runs_on_the_saved_rows(tmp_path):
  """docs/lra.md's "Rebuild the table" command, as written, on the rows kept in
  benchmarks/results/: every file it names exists and the table it prints has their rows."""
  root = BENCH.parent
  text = (root / 'docs' / 'lra.md').read_text()
  block = text.split('Rebuild the table from the saved rows', 1)[1].split('```bash\n', 1)[1]
  command = block.split('```', 1)[0]
  assert '--out /tmp/lra_tables' in command and '\npython benchmarks/lra.py' in command, command
  command = command.replace('--out /tmp/lra_tables', f'--out {tmp_path}').replace(
      '\npython benchmarks/lra.py', f'\n{sys.executable} benchmarks/lra.py')
  out = subprocess.run(['bash', '-c', command], cwd=root, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert '| transformer | 33.70 (36.37) |' in out.stdout, out.stdout
  raw_keys = '| reformer (raw_keys) | 33.70 [13] (37.27) | 81.67 [14] [15] (68.50) |'
  assert raw_keys in out.stdout, out.stdout
  assert '| reformer (rotary) | 34.25 [16] [17] (37.27) |' in out.stdout, out.stdout
  assert ('[17] reformer (rotary) on listops: 36.19 on examples 0-19,999 of the test stream'
          in out.stdout), out.stdout
  assert '| reformer (rotary_10k) | 34.40 [18] [19] [20] (37.27) |' in out.stdout, out.stdout
  assert ('[7] transformer (rotary_bucketed) on listops: 36.41 on examples 0-19,999'
          in out.stdout), out.stdout
  assert '| transformer (rotary_bucketed_30k) | 34.90 [9] [10] (36.37) |' in out.stdout, out.stdout
