"""The GPU benchmark scripts still run (tiny sizes on CPU; numbers meaningless, no timing asserts)."""
import json
import subprocess
import sys

import pytest

from tests.benchmarks.scripts import BENCH, run_script


def run(name, *args):
  return run_script(name, *args, timeout=900).stdout


def test_attention_gpu_script_runs_every_kind_on_cpu():
  out = run('attention_gpu.py', '--lengths', '512', '--causal', 'causal',
            '--kinds', 'xla', 'lsh', 'favor', 'favor_keep', 'block_sparse', 'triton_flash-core',
            '--budget_s', '0')
  for kind in ('xla', 'lsh', 'favor', 'favor_keep', 'block_sparse', 'triton_flash-core'):
    assert f'| causal | 512 | {kind} |' in out
  assert 'Error' not in out.split('| direction')[1], out


def test_sparse_combine_ab_script_checks_its_variants_agree_on_cpu():
  """The A/B script's variants (the grouped combine, other work-row widths) equal the first
  (interpreter, split blocks in both directions), so its GPU timings compare equal results."""
  out = run('sparse_combine_ab.py', '--interpret', '--check_length', '1024', '--budget_s', '0',
            '--variants', 'landed', 'grouped+bwd8', 'landed+fwd4+bwd8')
  rows = [json.loads(l) for l in out.splitlines() if l.startswith('{')]
  assert len(rows) == 6 and all(r['ok'] and r['split_key_blocks'] > 1 for r in rows), out
  assert {r['split_key_blocks'] for r in rows if r['variant'] == 'landed'} == {2}, out


@pytest.mark.slow   # ~30 s of CPU
def test_head_width_script_finds_the_padded_kernel_as_close_as_xla_on_cpu():
  """At d_head 24 (the kernel of 32, zero-padded; interpreted), both layers' bf16 outputs and
  gradients are as far from float32 XLA as bf16 XLA is."""
  out = run('head_width_gpu.py', '--tiny', '--widths', '24', '--budget_s', '0')
  rows = [json.loads(l) for l in out.splitlines() if l.startswith('{')]
  assert [r['kind'] for r in rows] == ['block_sparse', 'lsh'], out
  for r in rows:
    assert 0 < r['interpret_error'] <= 1.5 * r['xla_error'] + 1e-3, r


@pytest.mark.slow   # 12-52 s of CPU; run with -m slow before a device session
def test_embedding_grad_script_compares_the_three_ways_on_cpu():
  out = run('embedding_grad_gpu.py', '--scale', '0.001', '--reps', '1')
  rows = [json.loads(l) for l in out.splitlines() if l.startswith('{')]
  assert len(rows) == 18 and not any('error' in r for r in rows), out
  # float32 sums: within bf16's final rounding of the float64 sum
  assert all(r['max_rel_error'] < 1e-2 for r in rows if r['way'] != 'take'), out


@pytest.mark.slow
@pytest.mark.parametrize('section', ['mfu', 'decode', 'long_lm'])
def test_models_gpu_script_runs_tiny_on_cpu(section):
  out = run('models_gpu.py', section, '--tiny', '--reps', '1')
  assert '"error"' not in out, out


@pytest.mark.slow
@pytest.mark.parametrize('section', ['train', 'decode', 'config'])
def test_profile_gpu_script_traces_and_summarizes_on_cpu(section):
  out = run('profile_gpu.py', section, '--tiny', '--steps', '1',
            '--decode_tokens', '4', '--config', 'lra_pathfinder_local_tiny')
  assert '"wall_ms_per_step"' in out and '| kernel |' in out


def test_decode_attention_script_checks_and_times_the_xla_variants_on_cpu():
  out = run('decode_attention_gpu.py', '--batch', '1', '--heads', '2',
            '--max_len', '128', '--layers', '1', '--positions', '50', '--reps', '1',
            '--only', 'einsum_masked (current)', 'split_k16', 'dpa_xla_seqlens')
  rows = [l for l in out.splitlines() if l.startswith('| ') and '| 50 |' in l]
  assert len(rows) == 3 and all(float(r.split('|')[5]) < 1e-2 for r in rows), out


@pytest.mark.slow
def test_novel_gpu_script_trains_evaluates_and_samples_both_models_on_cpu(tmp_path):
  out = subprocess.run([sys.executable, str(BENCH / 'novel_gpu.py'), '--tiny', '--max_seconds',
                        '1', '--out', str(tmp_path), '--sample_tokens', '8'],
                       capture_output=True, text=True, timeout=900, cwd=BENCH.parent)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.count('Sample (') == 2 and '| ReformerLM' in out.stdout, out.stdout


@pytest.mark.slow
def test_image_gpu_script_trains_scores_and_saves_a_grid_on_cpu(tmp_path):
  out = run('image_gpu.py', '--tiny', '--out', str(tmp_path))
  assert '| ImageReformerLM' in out and (tmp_path / 'completions.png').exists()


@pytest.mark.slow
def test_run_all_runs_the_suite_and_prints_the_summary_table(tmp_path):
  out = run('run_all.py', '--tiny', '--out', str(tmp_path))
  assert '| benchmark | measured | target |' in out
  assert '| decode TransformerLM cached vs re-run |' in out, out


@pytest.mark.slow   # 12-52 s of CPU; run with -m slow before a device session
def test_loop_overhead_script_times_both_loops_on_cpu():
  out = run('loop_overhead_gpu.py', '--tiny', '--steps', '2', '--warmup', '1',
            '--batch', '2')
  row = [l for l in out.splitlines() if 'duplication ReformerLM' in l]
  assert len(row) == 1 and float(row[0].split('|')[-2]) > 0, out


@pytest.mark.slow
def test_lra_script_trains_scores_times_and_tabulates_on_cpu(tmp_path):
  """--smoke: ListOps with the tiny Transformer and Performer configs, 2 steps each through
  plait-train's train(), test accuracy from the best checkpoint, one speed length."""
  out = run('lra.py', '--smoke', '--out', str(tmp_path))
  results = json.loads((tmp_path / 'lra.json').read_text())
  assert [(r['task'], r['model'], r['steps']) for r in results['accuracy']] == [
      ('listops', 'transformer', 2), ('listops', 'performer', 2)]
  assert all(0 <= r['test'] <= 100 for r in results['accuracy'])
  assert [r['model'] for r in results['speed'] if 'error' not in r] == ['transformer', 'performer']
  assert '| performer | ' in out and '(18.01)' in out and '| 1.00 |' in out
  assert (tmp_path / 'lra.md').is_file()


@pytest.mark.slow
def test_lra_script_trains_in_processes_and_merges_earlier_rows(tmp_path):
  """--jobs 2: each run in its own process, rows collected; --include fills the tables with an
  earlier file's rows (a model this run did not train, footnoted as cut short) and never
  overwrites the earlier file."""
  earlier = tmp_path / 'earlier.json'
  row = {'task': 'listops', 'model': 'bigbird', 'steps': 30, 'schedule_steps': 50, 'val': 40.0,
         'test': 39.5}
  earlier.write_text(json.dumps({'accuracy': [row], 'speed': []}))
  before = earlier.read_text()
  out_dir = tmp_path / 'out'
  out = run('lra.py', '--smoke', '--accuracy_only', '--jobs', '2', '--include',
            str(earlier), '--out', str(out_dir))
  results = json.loads((out_dir / 'lra.json').read_text())
  trained = [r for r in results['accuracy'] if 'included_from' not in r]
  assert sorted((r['model'], r['steps']) for r in trained) == [('performer', 2), ('transformer', 2)]
  assert all('error' not in r for r in trained), trained
  assert (out_dir / 'jobs' / 'listops_performer.log').is_file()
  assert '| bigbird | 39.50 [1] (36.05)' in out and '30 of the schedule\'s 50 steps' in out, out
  assert earlier.read_text() == before


@pytest.mark.slow
def test_favor_causal_gpu_script_runs_through_the_interpreter_on_cpu():
  out = run('favor_causal_gpu.py', '--interpret', '--skip_checks', '--lengths',
            '128', '--budget_s', '0')
  for kind in ('favor_pallas', 'favor_xla', 'product-core-pallas', 'states-fwd'):
    assert f'| causal | 128 | {kind} | ' in out
  assert '| causal | 128 | favor_pallas | Error' not in out, out


@pytest.mark.slow
@pytest.mark.parametrize('script,args', [
    ('favor_feature_tune.py', ('--rows', '32', '64', '--features', '64', '--warps', '4')),
    ('favor_product_tune.py', ())])
def test_favor_tuning_scripts_sweep_through_the_interpreter_on_cpu(script, args):
  """Every setting's row is timed and equals the defaults' (the first row)."""
  rows = [json.loads(line) for line in run(script, '--tiny', *args).splitlines()
          if line.startswith('{')]
  assert len(rows) >= 2 and all('error' not in r for r in rows), rows
  assert rows[0]['rel_diff'] == 0 and all(r['rel_diff'] < 1e-2 for r in rows), rows


@pytest.mark.slow
def test_feature_tuning_reports_a_setting_out_of_time_and_goes_on():
  """Each setting runs in its own Python: one that gives no row within --setting_timeout_s
  is a row with the error, and the sweep reaches the next setting."""
  rows = [json.loads(line) for line in run(
      'favor_feature_tune.py', '--tiny', '--rows', '32', '--features', '64', '--warps', '4',
      '--setting_timeout_s', '0.5').splitlines() if line.startswith('{')]
  assert len(rows) == 2 and all('TimeoutExpired' in r['error'] for r in rows), rows


def test_qr_features_gpu_script_checks_the_kernel_through_the_interpreter_on_cpu():
  out = run('qr_features_gpu.py', '--interpret', '--heads', '1')
  assert '"matrices": 4' in out and '"passed": true' in out and 'qr kernel checks ok' in out, out


@pytest.mark.slow   # 12-52 s of CPU; run with -m slow before a device session
def test_compaction_script_times_and_checks_every_compacting_model_on_cpu():
  out = run('compaction_gpu.py', '--batch', '4', '--reps', '1')
  rows = [json.loads(l) for l in out.splitlines() if l.startswith('{"model"')]
  assert [(r['model'], r['way']) for r in rows] == [
      (m, w) for m in ('transformer', 'performer', 'reformer') for w in ('full', 'compact')]
  assert all(r['max_logit_diff_float32'] < 1e-4 for r in rows if r['way'] != 'full'), out


@pytest.mark.slow   # ~45 s of CPU; run with -m slow before a device session
def test_pathfinder_kernels_script_compares_and_trains_each_implementation_on_cpu():
  """The tiny BigBird config, XLA and the kernel through the interpreter: the same loss at
  the first step (the same attention), both scored."""
  out = run('pathfinder_kernels_gpu.py', '--config', 'lra_pathfinder_bigbird_tiny',
            '--implementations', 'xla', 'interpret', '--batch', '4', '--steps', '2', '--every',
            '1', '--n_examples', '64', '--valid_batches', '2')
  assert 'bf16 interpret vs float32 xla: whole gradient' in out, out
  first = {l.split()[0]: float(l.split('loss ')[1].split(',')[0])
           for l in out.splitlines() if ' step 1: loss ' in l}
  assert set(first) == {'xla', 'interpret'} and abs(first['xla'] - first['interpret']) < 1e-2
  assert sum(' step 2: ' in l and 'validation' in l for l in out.splitlines()) == 2, out


@pytest.mark.slow
def test_lsh_kernel_gpu_script_checks_the_kernel_through_the_interpreter_on_cpu():
  """Both key kinds and directions, a full and a padded odd length, both dtypes, heads of 64
  and of 24 (zero-padded): buckets equal, errors ok."""
  out = run('lsh_kernel_gpu.py', '--interpret', '--cases', '256', '0', '201', '1',
            '--d_heads', '24', '64')
  rows = [l for l in out.splitlines() if l.startswith('d_head=')]
  assert len(rows) == 32 and all('buckets equal' in l and l.endswith(' ok') for l in rows), out
  assert sum(' keys=raw ' in l for l in rows) == 16, out
  assert sum(l.startswith('d_head=24 ') for l in rows) == 16, out
