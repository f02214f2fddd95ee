"""User paths of the dense and FAVOR+ LMs: full config shrunk by sizes -> train,
eval, checkpoint, kill -9, resume, plait-decode (tests/user_paths.py). One file per pair of
configs, so that pytest-xdist runs them on different workers."""
import pytest

from tests import user_paths

NAMES = 'transformer_lm_crime_and_punishment performer_crime_and_punishment'.split()


@pytest.mark.parametrize('name', NAMES)
def test_full_config_shrunk_by_sizes_trains_resumes_and_decodes(name, tmp_path,
                                                                 user_path_cache):
  text = 'imagenet' not in name and 'duplication' not in name
  user_paths.check_user_path(name, str(tmp_path), cache_dir=user_path_cache,
                             decode_prompt='Raskolnikov ' if text else None)
