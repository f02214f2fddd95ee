"""Features behind an extra ([tfds], [images]) say which extra to install when it is missing."""
import sys

import pytest

import plait.data as pd
from plait.data import images
from plait.data.extras import require


def test_require_names_the_extra_and_the_distribution(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)   # as if not installed
  with pytest.raises(ImportError, match=r"feature X needs tensorflow-datasets.*"
                                        r"pip install 'plait\[tfds\]'"):
    require('tensorflow_datasets', extra='tfds', feature='feature X')


def test_require_returns_the_module():
  assert require('json', extra='none', feature='f').dumps(1) == '1'


def test_tfds_without_the_extra_says_pip_install_plait_tfds(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)
  with pytest.raises(ImportError, match=r"plait\.data\.TFDS needs tensorflow-datasets.*"
                                        r"plait\[tfds\]"):
    pd.TFDS('mnist', data_dir='/nonexistent').data_source()


def test_tfds_without_array_record_says_pip_install_plait_tfds(monkeypatch):
  pytest.importorskip('tensorflow_datasets')
  monkeypatch.setitem(sys.modules, 'array_record', None)
  with pytest.raises(ImportError, match=r'needs array_record.*plait\[tfds\]'):
    pd.TFDS('mnist', data_dir='/nonexistent').data_source()


def test_offline_images_without_the_extra_says_pip_install_plait_images(monkeypatch):
  for module in ('skimage', 'sklearn'):
    monkeypatch.setitem(sys.modules, module, None)
  images.offline_photos.cache_clear()
  try:
    with pytest.raises(ImportError, match=r"needs scikit-image.*plait\[images\]"):
      images.offline_photos()
  finally:
    images.offline_photos.cache_clear()
