"""Keeps data tests away from the user's cache: downloads/tokenizers go to a tmp dir."""
import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
  monkeypatch.setenv('PLAIT_CACHE_DIR', str(tmp_path / 'plait_cache'))
