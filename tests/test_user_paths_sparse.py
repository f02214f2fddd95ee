"""User paths of BigBird and the duplication task: each full config shrunk by sizes, through
train, eval, checkpoint, kill -9, resume and plait-decode (tests/user_paths.py)."""
from tests import user_paths

test_full_config_shrunk_by_sizes_trains_resumes_and_decodes = user_paths.user_path_test(
    ['bigbird_crime_and_punishment', 'reformer_duplication'])
