"""JAX's persistent compilation cache, on by default for `plait-train` and `plait-decode`.

A resumed run or a decode of a trained run compiles the same programs as the run before it;
with the cache they are loaded from disk instead of compiled again (seconds instead of a
minute for the full Reformer config on a GPU; benchmarks/RESULTS.md, section 9).

  >>> from plait.supervised import compilation_cache
  >>> compilation_cache.enable()            # <plait cache dir>/xla, e.g. ~/.cache/plait/xla
  >>> compilation_cache.enable('/fast/disk/xla')
  >>> compilation_cache.enable('none')      # off

The directory defaults to `$PLAIT_COMPILATION_CACHE`, else `xla/` in plait's cache
directory (`$PLAIT_CACHE_DIR`, `$XDG_CACHE_HOME/plait` or `~/.cache/plait`). Entries are keyed
by the program, the JAX/XLA version and the device, so a stale entry is never used; delete
the directory to reclaim the space.
"""
import os

OFF = 'none'
ENV = 'PLAIT_COMPILATION_CACHE'
# Every program is kept (JAX's default keeps those that took >= 1 s): a resumed run also
# compiles dozens of small ones (initializers, rng splits, casts), each 50-200 ms on a GPU.
MIN_COMPILE_SECONDS = 0.0


def default_directory():
  """$PLAIT_COMPILATION_CACHE, else <plait cache dir>/xla."""
  if os.environ.get(ENV):
    return os.environ[ENV]
  from plait.data import text  # pylint: disable=import-outside-toplevel
  return str(text.cache_dir() / 'xla')


def enable(directory=None):
  """Turns JAX's persistent compilation cache on in `directory` (None: the default; 'none': off).

  Returns the directory used, or None when off. A directory that cannot be created is an
  OSError naming it (pass 'none' to run without the cache).
  """
  import jax  # pylint: disable=import-outside-toplevel
  directory = default_directory() if directory is None else str(directory)
  if directory.lower() == OFF:
    jax.config.update('jax_enable_compilation_cache', False)
    return None
  directory = os.path.abspath(os.path.expanduser(directory))
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as e:
    raise OSError(f'the compilation cache directory {directory} cannot be created ({e}); pass '
                  f"--compilation_cache_dir=<a writable directory> or 'none'.") from None
  # pylint: disable-next=import-outside-toplevel
  from jax.experimental.compilation_cache import compilation_cache
  jax.config.update('jax_enable_compilation_cache', True)
  jax.config.update('jax_compilation_cache_dir', directory)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', MIN_COMPILE_SECONDS)
  compilation_cache.reset_cache()  # JAX opens its cache once: reopen it in `directory`
  return directory
