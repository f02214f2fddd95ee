"""setuptools' PEP 517 backend, building wheels in a temporary directory.

setuptools writes its intermediate files to `build/` in the source tree and leaves them there
after `pip install .` (pypa/setuptools#3236); stale files in it can even end up in a later
wheel. This backend points setuptools' `build_base` at a fresh temporary directory for each
wheel (through distutils' DIST_EXTRA_CONFIG file), so no `build/` appears in the checkout.
Everything else is `setuptools.build_meta` unchanged.
"""
import contextlib
import os
import tempfile

from setuptools import build_meta
from setuptools.build_meta import *  # pylint: disable=wildcard-import,unused-wildcard-import


@contextlib.contextmanager
def _temporary_build_base():
  with tempfile.TemporaryDirectory(prefix='plait-build-') as tmp:
    config = os.path.join(tmp, 'build.cfg')
    with open(config, 'w', encoding='utf-8') as f:
      f.write(f'[build]\nbuild_base = {os.path.join(tmp, "build")}\n')
    previous = os.environ.get('DIST_EXTRA_CONFIG')
    os.environ['DIST_EXTRA_CONFIG'] = config
    try:
      yield
    finally:
      if previous is None:
        del os.environ['DIST_EXTRA_CONFIG']
      else:
        os.environ['DIST_EXTRA_CONFIG'] = previous


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
  with _temporary_build_base():
    return build_meta.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
  with _temporary_build_base():
    return build_meta.build_editable(wheel_directory, config_settings, metadata_directory)
