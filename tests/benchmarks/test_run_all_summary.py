"""run_all.py's summary table reads each benchmark's JSON into (what, measured, target) rows."""
import json

from tests.benchmarks.scripts import load_script

run_all = load_script('run_all.py')


def test_long_lm_rows_give_each_kind_against_the_transformer_and_skip_the_baseline(tmp_path):
  rows = [{'model': 'TransformerLM', 'length': 8192, 'tokens_per_s': 1.0e6, 'vs_transformer': 1.0},
          {'model': 'BigBirdLM', 'length': 8192, 'tokens_per_s': 1.5e6, 'vs_transformer': 1.5},
          {'model': 'PerformerLM', 'length': 8192, 'error': 'RESOURCE_EXHAUSTED: ...'}]
  (tmp_path / 'long_lm.json').write_text(json.dumps(rows))
  (tmp_path / 'reformer_long.json').write_text(json.dumps(
      [{'length': 1048576, 'step_s': 1.4985, 'peak_gib': 11.807}]))
  assert run_all.summary(str(tmp_path)) == [
      ('ReformerLM step, 1048576 tokens', '1.50 s, peak 11.81 GiB', '≤ 1.5 s and ≤ 11.56 GiB at 1M'),
      ('BigBirdLM training, 8192 tokens', '1.50 M tokens/s (1.50× TransformerLM)',
       '> 1× (faster than cuDNN flash)')]
