"""benchmarks/pathfinder_dots.py: the dots-only and scattered images, and the script runs (tiny)."""
import argparse

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
  tokens, labels = dots.images('validation', 8, 'dots')
  assert tokens.shape == (8, 1024) and list(labels) == [0, 1] * 4


def test_scattered_images_keep_the_dots_and_add_dash_pixels_elsewhere():
  examples = pathfinder.PathfinderExamples('validation', 0, 6, 32)
  tokens, labels = dots.images('validation', 6, 'scattered', n_distractors=30)
  assert tokens.shape == (6, 1024) and list(labels) == [0, 1] * 3
  np.testing.assert_array_equal(tokens, dots.images('validation', 6, 'scattered', 30)[0])
  for i in range(6):
    scene = examples.scene(i)
    alone = dots.dots_image(scene).reshape(-1)
    whole = pathfinder.render(scene, 32).reshape(-1)
    on_dots = alone > 0
    np.testing.assert_array_equal(tokens[i][on_dots], alone[on_dots])
    added = tokens[i][~on_dots]
    assert (added > 0).sum() == 30
    dash_values = whole[(whole > 0) & ~on_dots]
    assert np.all(np.isin(added[added > 0], dash_values))
  assert not np.array_equal(tokens[0] > 0, tokens[2] > 0)
  np.testing.assert_array_equal(  # more distractors than dash pixels: every one, once
      (dots.images('validation', 1, 'scattered', 10_000)[0][0] > 0).sum(),
      (pathfinder.render(examples.scene(0), 32) > 0).sum())


@pytest.mark.parametrize('text, expected', [
    ("pooling='cls'", ('pooling', 'cls')), ('n_buckets=1', ('n_buckets', 1))])
def test_set_reads_a_name_and_a_python_literal(text, expected):
  assert dots._setting(text) == expected  # pylint: disable=protected-access


@pytest.mark.parametrize('text', ['pooling=cls', 'n_buckets', '=1', '2x=1'])
def test_set_rejects_what_is_not_name_equals_literal(text):
  with pytest.raises(argparse.ArgumentTypeError, match='NAME=VALUE'):
    dots._setting(text)  # pylint: disable=protected-access


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


def test_pathfinder_dots_script_trains_on_scattered_images_with_settings():
  """The Reformer as dense shared-QK attention with CLS pooling, on scattered images."""
  out = run_script('pathfinder_dots.py', '--model', 'reformer', '--positional', 'octave',
                   '--images', 'scattered', '--distractors', '20', '--set', 'n_buckets=1',
                   '--set', "pooling='cls'", '--train', '64', '--valid', '40', '--steps', '2',
                   '--every', '1', '--batch', '16')
  assert 'scattered images' in out.stdout
  assert_scored_steps(out.stdout, 'held-out')


def test_seed_changes_the_first_step():
  """--seed reaches the initialization or the batch order: another first-step loss."""
  args = ('--model', 'transformer', '--positional', 'octave', '--train', '64', '--valid', '40',
          '--steps', '1', '--every', '1', '--batch', '16')
  first, other = (run_script('pathfinder_dots.py', *args, '--seed', s).stdout for s in '01')
  step = lambda out: next(l.split(', ')[0] for l in out.splitlines() if l.startswith('step 1:'))
  assert step(first) != step(other)   # 'step 1: loss ...'


def test_encoder_settings_reach_the_shipped_model():
  """--set's settings are bound on the config's encoder: CLS pooling adds the CLS vector."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  def n_weights(extra):
    model, _ = dots.encoders('transformer', 'octave', None, 16, extra)
    weights, _ = model.init(jax.ShapeDtypeStruct((2, 1024), jnp.int32), jax.random.key(0))
    return sum(w.size for w in jax.tree.leaves(weights))

  assert n_weights({'pooling': 'cls'}) == n_weights({}) + 32   # d_model 32
