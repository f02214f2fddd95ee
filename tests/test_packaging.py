"""pyproject.toml's metadata is consistent: scripts resolve, the constraints pin every
dependency inside its declared range, and package data ships what the code reads."""
import importlib
import pathlib
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import plait

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']


def _pins():
  pins = {}
  for line in (ROOT / 'constraints.txt').read_text().splitlines():
    line = line.split('#')[0].strip()
    if line:
      req = Requirement(line)
      (version,) = [s.version for s in req.specifier if s.operator == '==']
      pins[canonicalize_name(req.name)] = version
  return pins


def _requirements():
  reqs = [Requirement(r) for r in PROJECT['dependencies']]
  for extra in PROJECT['optional-dependencies'].values():
    reqs += [Requirement(r) for r in extra if Requirement(r).name != 'plait']
  return reqs


@pytest.mark.parametrize('name', sorted(PROJECT['scripts']))
def test_console_scripts_point_at_callables(name):
  module, func = PROJECT['scripts'][name].split(':')
  assert callable(getattr(importlib.import_module(module), func)), name


@pytest.mark.parametrize('req', _requirements(), ids=str)
def test_constraints_pin_each_dependency_inside_its_range(req):
  pins = _pins()
  name = canonicalize_name(req.name)
  assert name in pins, f'constraints.txt has no pin for {req.name}'
  assert req.specifier.contains(pins[name]), f'{req.name}=={pins[name]} is outside {req}'


def test_constraints_pin_the_version_of_jax_the_gpu_plugin_is_built_for():
  pins = _pins()
  assert pins['jax'] == pins['jaxlib'] == pins['jax-cuda13-plugin'] == pins['jax-cuda13-pjrt']


def test_version_and_package_data():
  assert PROJECT['dynamic'] == ['version'] and plait.__version__
  package_data = tomllib.loads((ROOT / 'pyproject.toml').read_text())['tool']['setuptools'][
      'package-data']['plait']
  for pattern in package_data:
    assert list((ROOT / 'plait').glob(pattern)), f'package-data {pattern!r} matches no file'


def test_sdist_carries_the_in_tree_build_backend():
  build = tomllib.loads((ROOT / 'pyproject.toml').read_text())['build-system']
  (backend_dir,) = build['backend-path']
  backend = f"{backend_dir}/{build['build-backend']}.py"
  assert (ROOT / backend).is_file()
  assert f'include {backend}' in (ROOT / 'MANIFEST.in').read_text().splitlines()
