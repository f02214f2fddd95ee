"""Image tokens, the offline photo stand-in, folders, and image LM inputs."""
import json

import numpy as np
import pytest

import plait.data as pd


def _random_images(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_tokens_round_trip_in_raster_order():
  images = _random_images((2, 64, 64, 3))
  tokens = pd.images_to_tokens(images)
  assert tokens.shape == (2, 12288) and tokens.dtype == np.int32
  assert tokens[1, (5 * 64 + 7) * 3 + 2] == images[1, 5, 7, 2]
  np.testing.assert_array_equal(pd.tokens_to_images(tokens), images)


@pytest.mark.parametrize('bad', [np.zeros((64, 64), np.uint8), np.zeros((32, 32, 3), np.uint8),
                                 np.zeros((64, 64, 4), np.uint8)])
def test_wrong_image_shapes_are_clear_errors(bad):
  with pytest.raises(ValueError, match=r'images_to_tokens: expected images of shape'):
    pd.images_to_tokens(bad)


def test_float_images_and_bad_tokens_are_clear_errors():
  with pytest.raises(TypeError, match='uint8'):
    pd.images_to_tokens(np.random.default_rng(0).random((64, 64, 3)))
  with pytest.raises(ValueError, match=r'\(\.\.\., 12288\)'):
    pd.tokens_to_images(np.ones((2, 100), np.int32))
  with pytest.raises(ValueError, match=r'\[0, 255\]'):
    pd.tokens_to_images(np.full((12288,), 256, np.int32))


def test_offline_images_are_real_varied_64x64_photos():
  stream = pd.Serial(pd.offline_images(seed=0), pd.Batch(8))
  images = next(stream)
  assert images.shape == (8, 64, 64, 3) and images.dtype == np.uint8
  for image in images:
    assert image.std() > 5  # not constant
    # Neighbouring pixels of photos are correlated, unlike noise.
    a, b = image[:, :-1].astype(float).ravel(), image[:, 1:].astype(float).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.5
  assert len({im.tobytes() for im in images}) == 8
  assert len(pd.images.offline_photos()) >= 10


def test_offline_images_are_deterministic_and_resumable():
  a = pd.Serial(pd.offline_images(seed=3), pd.Batch(2))
  b = pd.Serial(pd.offline_images(seed=3), pd.Batch(2))
  np.testing.assert_array_equal(next(a), next(b))
  state = json.loads(json.dumps(a.get_state()))
  want = next(a)
  c = pd.Serial(pd.offline_images(seed=3), pd.Batch(2))
  c.set_state(state)
  np.testing.assert_array_equal(next(c), want)
  assert not np.array_equal(next(pd.Serial(pd.offline_images(seed=4))), want[0])


def test_image_folder_crops_resizes_and_rejects_junk(tmp_path):
  from PIL import Image
  Image.fromarray(_random_images((80, 120, 3), 1)).save(tmp_path / 'a.png')
  Image.fromarray(_random_images((64, 64, 3), 2)).save(tmp_path / 'b.png')
  (tmp_path / 'notes.txt').write_text('not an image')
  images = list(pd.Serial(pd.image_folder(tmp_path, shuffle=False, repeat=False)))
  assert [im.shape for im in images] == [(64, 64, 3)] * 2
  np.testing.assert_array_equal(images[1], _random_images((64, 64, 3), 2))
  (tmp_path / 'broken.jpg').write_bytes(b'not a jpeg')
  with pytest.raises(ValueError, match='broken.jpg'):
    list(pd.Serial(pd.image_folder(tmp_path, shuffle=False, repeat=False)))


def test_image_folder_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='not a directory'):
    pd.image_folder(tmp_path / 'missing')
  with pytest.raises(ValueError, match='no image files'):
    pd.image_folder(tmp_path)


def test_image_lm_inputs_offline_contract():
  make = pd.image_lm_inputs(source='offline', batch_size=2, seed=0)
  inputs, targets, weights = next(make())
  assert inputs.shape == targets.shape == weights.shape == (2, 12288)
  assert inputs.dtype == np.int32 and weights.dtype == np.float32 and make.vocab_size == 256
  np.testing.assert_array_equal(inputs, targets)
  np.testing.assert_array_equal(weights, 1.0)
  assert pd.tokens_to_images(inputs).shape == (2, 64, 64, 3)


def test_image_lm_inputs_unknown_source():
  with pytest.raises(ValueError, match="unknown source 'imagenet'"):
    pd.image_lm_inputs(source='imagenet')
  with pytest.raises(ValueError, match='needs path'):
    pd.image_lm_inputs(source='folder')
