"""User paths of the dense and FAVOR+ LMs: each full config shrunk by sizes, through
train, eval, checkpoint, kill -9, resume and plait-decode (tests/user_paths.py)."""
from tests import user_paths

test_full_config_shrunk_by_sizes_trains_resumes_and_decodes = user_paths.user_path_test(
    ['transformer_lm_crime_and_punishment', 'performer_crime_and_punishment'])
