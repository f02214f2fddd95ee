"""User path of a rotary-position LM: the full TransformerLM config shrunk by sizes, with
`TransformerLM.positional = 'rotary'`, through train, kill -9, resume and plait-decode (whose
predict-mode layers continue the positions from the prompt; tests/user_paths.py)."""
from tests import user_paths


def test_rotary_transformer_lm_trains_resumes_and_decodes(tmp_path, user_path_cache):
  user_paths.check_user_path(
      'transformer_lm_crime_and_punishment', str(tmp_path), cache_dir=user_path_cache,
      extra=["TransformerLM.positional = 'rotary'"])
  saved = (tmp_path / 'resumed' / 'config.gin').read_text()   # what the decode rebuilt
  assert "TransformerLM.positional = 'rotary'" in saved
