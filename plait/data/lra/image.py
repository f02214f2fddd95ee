"""LRA Image: CIFAR-10 as a sequence of 1024 grayscale pixels, 10 classes (Tay et al. 2020).

Read from TFDS's array_record files without TensorFlow (prepare once, see docs/lra.md):
'train' is CIFAR-10's first 45,000 training images, 'validation' the last 5,000, 'test' its
10,000 test images, as in LRA. RGB becomes gray as in LRA (tf.image.rgb_to_grayscale on uint8:
weights 0.2989, 0.5870, 0.1140, truncated). Tokens are the pixels 0..255 in raster order:
vocab 256, L = 1024, no padding.

    make = plait.data.lra.lra_image_inputs(split='train', batch_size=32, data_dir=DIR)
    inputs, targets, weights = next(make())   # int32 (32, 1024), int32 (32,), float32 (32,)
"""
import numpy as np

from plait.data.lra.common import LRAInputs, Mapped, check_int, check_split, example, open_tfds

VOCAB_SIZE = 256
N_CLASSES = 10
MAX_LENGTH = 1024
TFDS_NAME = 'cifar10'
TFDS_SPLITS = {'train': 'train[:90%]', 'validation': 'train[90%:]', 'test': 'test'}
SPLIT_SIZES = {'train': 45_000, 'validation': 5_000, 'test': 10_000}
_GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)


def to_grayscale(rgb):
  """uint8 (..., 3) -> uint8 (...): LRA's grayscale (TF's rgb_to_grayscale on uint8 images)."""
  rgb = np.asarray(rgb)
  if rgb.dtype != np.uint8 or rgb.shape[-1:] != (3,):
    raise ValueError(f'to_grayscale: expects uint8 (..., 3) RGB, got {rgb.dtype} {rgb.shape}.')
  gray = (rgb.astype(np.float32) / 255) @ _GRAY_WEIGHTS
  return np.clip(gray * 255.5, 0, 255).astype(np.uint8)


def _cifar_example(record):
  image = np.asarray(record['image'])
  if image.shape != (32, 32, 3):
    raise ValueError(f'lra_image_inputs: expects 32x32x3 CIFAR-10 images, got {image.shape}.')
  return example(to_grayscale(image).reshape(-1), int(record['label']))


def lra_image_inputs(split='train', batch_size=32, seed=0, data_dir=None):
  """Batches of LRA Image, CIFAR-10 in gray (gin-configurable); needs the prepared TFDS data.

  Args:
    split: 'train' (45,000, reshuffled every epoch), 'validation' (5,000) or 'test' (10,000),
      the last two in a fixed order; every split repeats forever.
    batch_size: examples per batch.
    seed: non-negative seed of the training order.
    data_dir: TFDS data_dir holding cifar10 in array_record format (None: TFDS's default).

  Returns:
    An `LRAInputs`: call it for a resumable Pipeline of (inputs int32 (B, 1024) pixels
    0..255, targets int32 (B,) in 0..9, weights float32 (B,) ones).

  Raises:
    FileNotFoundError: the data is not prepared; the message says how to prepare it.
  """
  name = 'lra_image_inputs'
  split = check_split(name, split)
  batch_size = check_int(name, 'batch_size', batch_size)
  seed = check_int(name, 'seed', seed, low=0)
  records = open_tfds(name, TFDS_NAME, TFDS_SPLITS[split], data_dir)
  return LRAInputs('image', Mapped(records, _cifar_example), split, batch_size, seed,
                   VOCAB_SIZE, N_CLASSES, MAX_LENGTH)
