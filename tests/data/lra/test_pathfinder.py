"""LRA Pathfinder: labels checked on the rendered ink by connected components, balance, seeds."""
import numpy as np
import pytest
from skimage import measure
from skimage import morphology

from plait.data.lra import lra_pathfinder_inputs
from plait.data.lra import pathfinder
from tests.data.lra.resume import assert_resumes_exactly

CHECK_SIZE = 512  # pixels per side for the checks: 16 per scene unit


def components(scene):
  """Connected components of all the ink, each dash grown by 0.42 units to bridge the gaps.

  The gaps along a contour are 0.7 units (STEP - DASH_LENGTH - 2 DASH_RADIUS) and different
  contours' ink is at least 1.0 apart (two dots SEPARATION apart), so growing every blob by
  0.42 joins each contour's dashes and never two contours.
  """
  contour_masks, dots = pathfinder.ink_masks(scene, CHECK_SIZE)
  ink = np.any(contour_masks, axis=0) | dots
  grown = morphology.dilation(ink, morphology.disk(round(0.42 * CHECK_SIZE / 32)))
  return measure.label(grown, connectivity=2), contour_masks


def component_at(labels, point):
  x, y = (np.asarray(point) * CHECK_SIZE / 32).astype(int)
  return labels[y, x]


def test_label_says_whether_the_dots_are_joined_by_the_ink():
  examples = lra_pathfinder_inputs(split='validation').examples
  for i in range(24):
    scene = examples.scene(i)
    labels, contour_masks = components(scene)
    first, second = (component_at(labels, p) for p in scene.markers)
    assert first and second
    assert (first == second) == bool(scene.label) == bool(i % 2), i
    # The method is sound for this scene: each contour is one blob, no two contours share one.
    owners = [set(np.unique(labels[mask])) for mask in contour_masks]
    assert all(len(owner) == 1 for owner in owners), i
    assert len(set.union(*owners)) == len(owners), i


def test_the_image_is_the_ink_of_the_scene():
  examples = lra_pathfinder_inputs(split='test', resolution=64).examples
  scene = examples.scene(3)
  size = 64 * pathfinder.SUPERSAMPLE
  contour_masks, dots = pathfinder.ink_masks(scene, size)
  ink = np.any(contour_masks, axis=0) | dots
  coverage = ink.reshape(64, size // 64, 64, size // 64).mean(axis=(1, 3))
  np.testing.assert_array_equal(examples.image(3), np.round(coverage * 255).astype(np.uint8))


def test_main_contours_have_the_hard_length_and_keep_apart():
  examples = lra_pathfinder_inputs().examples
  for i in range(20):
    scene = examples.scene(i)
    assert [len(c) for c in scene.contours[:2]] == [14, 14]
    assert 2 <= len(scene.contours) <= 2 + pathfinder.N_DISTRACTORS
    for a in range(len(scene.contours)):
      steps = np.linalg.norm(np.diff(scene.contours[a], axis=0), axis=1)
      np.testing.assert_allclose(steps, pathfinder.STEP)
      for b in range(a):
        gaps = np.linalg.norm(scene.contours[a][:, None] - scene.contours[b][None], axis=-1)
        assert gaps.min() >= pathfinder.SEPARATION


def test_batches_are_balanced_pixels_in_range_and_shaped_per_resolution():
  for resolution in (32, 64, 128):
    make = lra_pathfinder_inputs(resolution=resolution, batch_size=4)
    inputs, targets, weights = next(make())
    assert inputs.shape == (4, resolution ** 2) and inputs.dtype == np.int32
    assert targets.dtype == np.int32 and weights.dtype == np.float32 and (weights == 1).all()
    assert inputs.min() == 0 and inputs.max() == 255
    assert make.max_length == resolution ** 2 and make.vocab_size == 256
  # Exactly balanced: example i has label i % 2, so each epoch of the shuffled training split
  # and each batch of an evaluation split (even batch size) is half positive.
  _, targets, _ = next(lra_pathfinder_inputs(batch_size=64, n_examples=64)())
  assert targets.sum() == 32
  _, targets, _ = next(lra_pathfinder_inputs(split='validation', batch_size=16)())
  assert targets.sum() == 8


def test_ink_does_not_give_the_label_away():
  examples = lra_pathfinder_inputs(split='test').examples
  ink = np.array([examples.image(i).sum() for i in range(80)], float)
  positive, negative = ink[1::2], ink[0::2]
  error = np.sqrt(positive.var() / len(positive) + negative.var() / len(negative))
  assert abs(positive.mean() - negative.mean()) < 4 * error


def test_scenes_are_the_same_at_every_resolution_and_seeded():
  scenes = [lra_pathfinder_inputs(resolution=r).examples.scene(5) for r in (32, 64, 128)]
  for scene in scenes[1:]:
    for a, b in zip(scene.contours, scenes[0].contours):
      np.testing.assert_array_equal(a, b)
  again = lra_pathfinder_inputs().examples.image(5)
  np.testing.assert_array_equal(again, lra_pathfinder_inputs().examples.image(5))
  assert not np.array_equal(again, lra_pathfinder_inputs(seed=1).examples.image(5))
  assert not np.array_equal(again, lra_pathfinder_inputs(split='test').examples.image(5))


def test_a_restored_pipeline_continues_exactly():
  make = lra_pathfinder_inputs(batch_size=2, n_examples=5)
  assert_resumes_exactly(make, n_before=3, n_after=2)


@pytest.mark.parametrize('kwargs, message', [
    ({'resolution': 48}, 'resolution must be one of'),
    ({'split': 'dev'}, 'split'),
    ({'n_examples': 0}, 'n_examples'),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
  with pytest.raises(ValueError, match=message):
    lra_pathfinder_inputs(**kwargs)
