"""benchmarks/pathfinder_learnable.py runs (tiny; the learning itself takes ~15 CPU minutes)."""
from tests.benchmarks.scripts import assert_scored_steps, run_script


def test_pathfinder_learnable_script_trains_and_scores_on_cpu():
  out = run_script('pathfinder_learnable.py', '--train', '64', '--valid', '500', '--steps', '2',
                   '--every', '1', '--channels', '4', '--workers', '0')
  assert_scored_steps(out.stdout, 'validation')
