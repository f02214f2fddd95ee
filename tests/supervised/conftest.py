"""Training tests build many small Loops with identical steps: share their compilations."""
import jax
import pytest


@pytest.fixture(scope='session', autouse=True)
def _shared_compilation_cache(tmp_path_factory):
  """A per-session persistent XLA cache, so identical train steps compile once."""
  old = (jax.config.jax_compilation_cache_dir,
         jax.config.jax_persistent_cache_min_compile_time_secs,
         jax.config.jax_persistent_cache_min_entry_size_bytes)
  jax.config.update('jax_compilation_cache_dir', str(tmp_path_factory.mktemp('xla_cache')))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  yield
  jax.config.update('jax_compilation_cache_dir', old[0])
  jax.config.update('jax_persistent_cache_min_compile_time_secs', old[1])
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', old[2])
