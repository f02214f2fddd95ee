"""benchmarks/pathfinder_dots.py: the dots-only images, and the script runs (tiny)."""
import numpy as np
import pytest

from plait.data.lra import pathfinder
from tests.benchmarks.scripts import assert_scored_steps, load_script, run_script

dots = load_script('pathfinder_dots.py')


def test_dots_images_are_the_rendered_dots_and_nothing_else():
  examples = pathfinder.PathfinderExamples('validation', 0, 8, 32)
  for i in range(8):
    scene = examples.scene(i)
    alone, whole = dots.dots_image(scene), pathfinder.render(scene, 32)
    _, dot_mask = pathfinder.ink_masks(scene, 32 * pathfinder.SUPERSAMPLE)
    s = pathfinder.SUPERSAMPLE
    np.testing.assert_array_equal(alone > 0, dot_mask.reshape(32, s, 32, s).any(axis=(1, 3)))
    assert np.all(alone <= whole) and 0 < (alone > 0).sum() < (whole > 0).sum()
  tokens, labels = dots.images('validation', 8, full=False)
  assert tokens.shape == (8, 1024) and list(labels) == [0, 1] * 4


@pytest.mark.parametrize('model, positional', [
    ('transformer', 'octave'),
    pytest.param('transformer', 'sinusoidal', marks=pytest.mark.slow),
    pytest.param('transformer', 'learned', marks=pytest.mark.slow),
    ('reformer', 'octave'),   # compacted, LSH
    pytest.param('bigbird', 'octave', marks=pytest.mark.slow)])
def test_pathfinder_dots_script_trains_and_scores_on_cpu(model, positional):
  """40 held-out images in batches of 16: the last evaluation batch is shorter."""
  out = run_script('pathfinder_dots.py', '--model', model, '--positional', positional,
                   '--train', '64', '--valid', '40', '--steps', '2', '--every', '1',
                   '--batch', '16')
  assert_scored_steps(out.stdout, 'held-out')
