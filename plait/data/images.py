"""Images as token sequences (ImageNet64 style) and image sources: offline photos, folders, TFDS.

A 64x64x3 uint8 image becomes 12288 int32 tokens in raster order (row, column, channel), vocab
256, as in the Reformer ImageNet64 experiments.

    make = plait.data.image_lm_inputs(source='offline', batch_size=4, seed=0)
    inputs, targets, weights = next(make())   # int32 (4, 12288), int32, float32 ones
    images = plait.data.tokens_to_images(inputs)   # uint8 (4, 64, 64, 3)
"""
import functools
import importlib.util
import pathlib

import numpy as np

from plait.data.extras import require
from plait.data.pipeline import FromSequence, Generate, Serial
from plait.data.stages import Batch, Map

IMAGE_SHAPE = (64, 64, 3)
_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp', '.tif', '.tiff')
# Photographs shipped inside the scikit-image wheel (no download needed).
_SKIMAGE_PHOTOS = ('astronaut.png', 'chelsea.png', 'coffee.png', 'hubble_deep_field.jpg',
                   'ihc.png', 'motorcycle_left.png', 'motorcycle_right.png', 'retina.jpg',
                   'rocket.jpg', 'camera.png', 'moon.png', 'coins.png')


def images_to_tokens(images, image_shape=IMAGE_SHAPE):
  """uint8 images (..., H, W, C) -> int32 tokens (..., H*W*C) in raster order."""
  images = np.asarray(images)
  image_shape = tuple(image_shape)
  if images.ndim < 3 or images.shape[-3:] != image_shape:
    want = ', '.join(map(str, image_shape))
    raise ValueError(f'images_to_tokens: expected images of shape (..., {want}), got '
                     f'{images.shape}; resize or crop them first (e.g. image_folder(size=...)).')
  if images.dtype != np.uint8:
    if not np.issubdtype(images.dtype, np.integer) or images.min() < 0 or images.max() > 255:
      raise TypeError(f'images_to_tokens: expected uint8 pixels in [0, 255], got dtype '
                      f'{images.dtype}; convert floats in [0, 1] with '
                      '(x * 255).round().astype(np.uint8).')
  return images.reshape(images.shape[:-3] + (-1,)).astype(np.int32)


def tokens_to_images(tokens, image_shape=IMAGE_SHAPE):
  """int tokens (..., H*W*C) in [0, 256) -> uint8 images (..., H, W, C)."""
  tokens = np.asarray(tokens)
  size = int(np.prod(image_shape))
  if tokens.ndim < 1 or tokens.shape[-1] != size:
    raise ValueError(f'tokens_to_images: expected tokens of shape (..., {size}) for images '
                     f'{tuple(image_shape)}, got {tokens.shape}.')
  if not np.issubdtype(tokens.dtype, np.integer):
    raise TypeError(f'tokens_to_images: expected int tokens, got {tokens.dtype}.')
  if tokens.size and (tokens.min() < 0 or tokens.max() > 255):
    raise ValueError(f'tokens_to_images: tokens must be pixel values in [0, 255], got range '
                     f'[{tokens.min()}, {tokens.max()}].')
  return tokens.astype(np.uint8).reshape(tokens.shape[:-1] + tuple(image_shape))


def _pil():
  from PIL import Image  # pylint: disable=import-outside-toplevel
  return Image


def _check_image(image, where):
  image = np.asarray(image)
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise ValueError(f'{where}: expected an (H, W, 3) image, got shape {image.shape}.')
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  if image.dtype != np.uint8:
    raise TypeError(f'{where}: expected uint8 pixels, got {image.dtype}.')
  return image[..., :3]


def resize_crop(image, size=64, rng=None, min_fraction=0.25):
  """Crops a square (random if `rng`, else centred) and resizes it to (size, size, 3) uint8.

  With `rng` the crop side is a random fraction in [min_fraction, 1] of the shorter side, and
  the result is flipped left-right with probability 1/2.
  """
  image = _check_image(image, 'resize_crop')
  h, w = image.shape[:2]
  side = min(h, w)
  if rng is not None:
    side = max(1, int(round(side * rng.uniform(min_fraction, 1.0))))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
  else:
    top, left = (h - side) // 2, (w - side) // 2
  crop = image[top:top + side, left:left + side]
  if side != size:
    Image = _pil()  # pylint: disable=invalid-name
    resample = Image.Resampling.BOX if side > size else Image.Resampling.BICUBIC
    crop = np.asarray(Image.fromarray(crop).resize((size, size), resample=resample))
  if rng is not None and rng.integers(2):
    crop = crop[:, ::-1]
  return np.ascontiguousarray(crop, dtype=np.uint8)


def _load_image_file(path):
  Image = _pil()  # pylint: disable=invalid-name
  try:
    with Image.open(path) as im:
      return np.asarray(im.convert('RGB'))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'image_folder: cannot read {path} as an image: {e}') from e


def _package_dir(package):
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    return None
  return pathlib.Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=1)
def offline_photos():
  """Real photographs shipped inside the scikit-image (and scikit-learn) wheels, RGB uint8."""
  files = []
  skimage_dir = _package_dir('skimage')
  if skimage_dir is not None:
    files += [skimage_dir / 'data' / n for n in _SKIMAGE_PHOTOS]
  sklearn_dir = _package_dir('sklearn')
  if sklearn_dir is not None:
    files += sorted((sklearn_dir / 'datasets' / 'images').glob('*.jpg'))
  photos = tuple(_load_image_file(f) for f in files if f.is_file())
  if not photos:
    require('skimage', extra='images', feature='offline_images (its photos)')
    raise ImportError('offline_images: no photos found in the scikit-image wheel '
                      f'({skimage_dir}/data); reinstall it: pip install --force-reinstall '
                      'scikit-image.')
  return photos


def offline_images(size=64, seed=0, n=None, min_fraction=0.25):
  """An offline stand-in for ImageNet64: random square crops of real photos resized to `size`.

  Image i depends only on (seed, i): the source is resumable and the same on every run.
  Returns a `Generate` source of uint8 (size, size, 3) arrays (endless unless `n`).
  """
  photos = offline_photos()

  def make(rng):
    return resize_crop(photos[int(rng.integers(len(photos)))], size, rng, min_fraction)

  return Generate(make, seed=seed, n=n)


class _Files:
  """Image files as a lazily-loaded sequence of centred (size, size, 3) crops."""

  def __init__(self, files, size):
    self._files, self._size = files, size

  def __len__(self):
    return len(self._files)

  def __getitem__(self, i):
    return resize_crop(_load_image_file(self._files[i]), self._size)


def image_folder(path, size=64, shuffle=True, seed=0, repeat=True):
  """Images found (recursively, sorted) under `path`, centre-cropped and resized to `size`."""
  path = pathlib.Path(path)
  if not path.is_dir():
    raise FileNotFoundError(f'image_folder: {path} is not a directory.')
  files = sorted(p for p in path.rglob('*') if p.suffix.lower() in _EXTENSIONS and p.is_file())
  if not files:
    raise ValueError(f'image_folder: no image files ({", ".join(_EXTENSIONS)}) under {path}.')
  return FromSequence(_Files(files, size), shuffle=shuffle, seed=seed, repeat=repeat)


class ImageLMInputs:
  """A zero-argument callable returning a fresh resumable Pipeline of image-token batches."""

  vocab_size = 256

  def __init__(self, source_fn, image_size, batch_size):
    self._source_fn, self.image_size, self.batch_size = source_fn, image_size, batch_size
    self.sequence_length = image_size * image_size * 3

  def __call__(self):
    shape = (self.image_size, self.image_size, 3)

    def to_example(image):
      image = np.asarray(image)
      if image.shape != shape:
        image = resize_crop(image, self.image_size)
      tokens = images_to_tokens(image, shape)
      return tokens, tokens, np.ones(tokens.shape, np.float32)  # every pixel value is a target

    return Serial(self._source_fn(), Map(to_example), Batch(self.batch_size))


def image_lm_inputs(source='offline', path=None, tfds_name='imagenet_resized/64x64',
                    split='train', data_dir=None, batch_size=8, seed=0, image_size=64):
  """Batches `(inputs, targets, weights)` of image tokens for autoregressive image models.

  Args:
    source: 'offline' (random crops of photos shipped with scikit-image), 'folder' (images
      under `path`) or 'tfds' (`tfds_name`/`split` prepared under `data_dir`).
    batch_size, seed: batch size and data seed.
    image_size: side of the square images (64 gives sequences of 12288 tokens).

  Returns:
    An `ImageLMInputs`: call it for a resumable Pipeline yielding int32 (B, size*size*3) inputs
    and targets and float32 weights (all ones); vocab_size is 256.
  """
  if source == 'offline':
    offline_photos()  # fail now, not at the first batch, if the photos are missing
    source_fn = lambda: offline_images(image_size, seed=seed)
  elif source == 'folder':
    if path is None:
      raise ValueError("image_lm_inputs: source='folder' needs path=<directory of images>.")
    image_folder(path, image_size)  # checks the folder now
    source_fn = lambda: image_folder(path, image_size, shuffle=split == 'train', seed=seed)
  elif source == 'tfds':
    from plait.data.tfds_source import TFDS  # pylint: disable=import-outside-toplevel
    tfds_source = TFDS(tfds_name, split=split, data_dir=data_dir, keys=('image',),
                       shuffle=split == 'train', seed=seed)
    source_fn = lambda: tfds_source
  else:
    raise ValueError(f"image_lm_inputs: unknown source {source!r}: use 'offline', 'folder' or "
                     "'tfds'.")
  return ImageLMInputs(source_fn, int(image_size), int(batch_size))
