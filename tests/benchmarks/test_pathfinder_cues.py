"""benchmarks/pathfinder_cues.py: the dot-distance cue and the dots' own pixel values."""
import numpy as np

from tests.benchmarks.scripts import load_script

cues = load_script('pathfinder_cues.py')


def test_distance_accuracy_is_scored_on_the_half_it_was_not_fitted_on():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 4000)
  separated = np.where(labels == 1, 20.5, 5.5)
  assert cues.distance_accuracy(separated, labels) == 1.0
  # A cue-free distance is a coin toss on the held-out half, however the bins were fitted.
  assert abs(cues.distance_accuracy(rng.uniform(0, 40, 4000), labels) - 0.5) < 0.05


def test_script_prints_both_cues(capsys):
  cues.main(['--scenes', '64'])
  out = capsys.readouterr().out
  assert 'label from the dot distance alone:' in out and 'dot pixels above that:' in out, out
