"""gin-configurable tiny model and data for trainer tests (imported from test .gin files)."""
import gin

from tests.supervised import helpers


@gin.configurable(denylist=['mode'])
def tiny_lm(d_model=16, mode='train'):
  del mode
  return helpers.tiny_lm(d_model)


@gin.configurable
def random_tokens(seed=0, batch=helpers.BATCH):
  return helpers.RandomTokens(seed, batch)


@gin.configurable
def file_tokens(path='/nonexistent/tokens.npy'):
  """Data read from `path` when opened (a missing file fails there, as real data does)."""
  def open_data():
    with open(path, 'rb'):
      return helpers.RandomTokens()
  return open_data
