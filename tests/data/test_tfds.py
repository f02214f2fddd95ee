"""TFDS through tfds.data_source (mocked), without TensorFlow."""
import os
import subprocess
import sys

import numpy as np
import pytest

import plait.data as pd

tfds = pytest.importorskip('tensorflow_datasets')


def test_importing_plait_data_does_not_import_tensorflow():
  code = ('import sys, plait, plait.data; plait.data.TFDS("mnist"); '
          'bad = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "torch")]; '
          'assert not bad, bad')
  subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


def test_tfds_source_reads_mock_examples_without_tensorflow():
  with tfds.testing.mock_data(num_examples=6):
    source = pd.TFDS('imagenet_resized/64x64', split='train', keys=('image', 'label'), seed=1)
    images = [next(pd.Serial(source))[0]]
    stream = pd.Serial(source, pd.Batch(3))
    image, label = next(stream)
  assert image.shape == (3, 64, 64, 3) and image.dtype == np.uint8 and label.shape == (3,)
  assert images[0].shape == (64, 64, 3)
  assert 'tensorflow' not in sys.modules


def test_tfds_epochs_are_permutations_and_resumable():
  with tfds.testing.mock_data(num_examples=5):
    source = pd.TFDS('imagenet_resized/64x64', split='train', keys=('label',), seed=2)
    a = pd.Serial(source)
    epoch = [int(next(a)) for _ in range(5)]
    state = a.get_state()
    expected = [int(next(a)) for _ in range(4)]
    b = pd.Serial(source)
    b.set_state(state)
    assert [int(next(b)) for _ in range(4)] == expected
  direct = [int(source.data_source()[i]['label']) for i in range(5)]
  assert sorted(epoch) == sorted(direct)


def test_image_lm_inputs_from_tfds_resizes_to_64():
  with tfds.testing.mock_data(num_examples=4):
    make = pd.image_lm_inputs(source='tfds', tfds_name='downsampled_imagenet/64x64',
                              batch_size=2)
    inputs, targets, weights = next(make())
  assert inputs.shape == (2, 64 * 64 * 3) and inputs.dtype == np.int32
  np.testing.assert_array_equal(inputs, targets)
  assert weights.min() == 1.0


def test_unknown_dataset_name_is_a_clear_error():
  with pytest.raises(ValueError, match='unknown dataset name'):
    pd.TFDS('no_such_dataset_plait').data_source()


def test_unprepared_dataset_says_how_to_prepare_it(tmp_path):
  prepare = 'tfds build imagenet_resized/64x64 --file_format=array_record'
  with pytest.raises(ValueError, match=prepare):
    pd.TFDS('imagenet_resized/64x64', data_dir=str(tmp_path)).data_source()


@pytest.mark.skipif(os.path.exists(os.path.expanduser('~/tensorflow_datasets/imagenet_resized')),
                    reason='the default data_dir holds imagenet_resized')
def test_unprepared_dataset_in_the_default_data_dir_says_how_to_prepare_it():
  # tfds raises KeyError ("`splits` is empty") there, which plait-train called a bad config
  with pytest.raises(ValueError, match='is not prepared.*splits'):
    pd.TFDS('imagenet_resized/64x64').data_source()


def test_missing_key_lists_the_features():
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(ValueError, match="no feature"):
      next(pd.Serial(pd.TFDS('imagenet_resized/64x64', keys=('caption',))))
