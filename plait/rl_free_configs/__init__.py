"""The gin configs shipped with plait (no RL code or dependencies), found by name.

  >>> from plait import rl_free_configs
  >>> rl_free_configs.path('reformer_crime_and_punishment_tiny')
  '.../plait/rl_free_configs/reformer_crime_and_punishment_tiny.gin'

Every full-size config has a `*_tiny` variant that trains in minutes on a CPU.
"""
import pathlib

DIRECTORY = pathlib.Path(__file__).resolve().parent


def names():
  """The config names (file names without .gin), sorted."""
  return sorted(p.stem for p in DIRECTORY.glob('*.gin'))


def path(name):
  """The absolute path of config `name` ('reformer_imagenet64' or 'reformer_imagenet64.gin')."""
  stem = name[:-4] if name.endswith('.gin') else name
  found = DIRECTORY / f'{stem}.gin'
  if not found.is_file():
    raise ValueError(f'rl_free_configs: no config named {name!r}; available: {", ".join(names())}.')
  return str(found)
