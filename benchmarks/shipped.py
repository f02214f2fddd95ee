"""A shipped config's model, built as plait-train builds it, with some of its settings changed.

  >>> model = shipped_model('lra_pathfinder_reformer', 'eval', compact_to=None, dropout=0.0)
  >>> optimizer = shipped_optimizer('lra_pathfinder_bigbird')   # AdamW on its schedule
  >>> binds('lra_pathfinder_bigbird', 'compact_to')
  False
  >>> with parsed('lra_pathfinder_local') as model:   # gin holds the config inside
  ...   inputs = gin.query_parameter('train.inputs').scoped_configurable_fn()

Benchmarks that time or train a config's model outside the trainer build it here, so they
follow the config as it is now (a copy of its settings in a script goes stale).
"""
import contextlib


@contextlib.contextmanager
def parsed(config):
  """plait/rl_free_configs/<config>.gin parsed; yields its `train.model` reference; gin is
  cleared before and after."""
  import gin  # pylint: disable=import-outside-toplevel
  from plait import rl_free_configs  # pylint: disable=import-outside-toplevel
  from plait.supervised import trainer  # pylint: disable=import-outside-toplevel
  gin.clear_config()
  try:
    trainer.parse_config([rl_free_configs.path(config)], [])
    yield gin.query_parameter('train.model')
  finally:
    gin.clear_config()


def shipped_model(config, mode, **settings):
  """<config>'s model in `mode` ('train' or 'eval'), with `settings` (argument -> value)
  bound on the model's configurable."""
  import gin  # pylint: disable=import-outside-toplevel
  with parsed(config) as model:
    with gin.unlock_config():
      for name, value in settings.items():
        gin.bind_parameter(f'{model.selector}.{name}', value)
    return model.scoped_configurable_fn(mode=mode)


def shipped_optimizer(config):
  """<config>'s optimizer as its bindings build it: `train.optimizer` (a factory such as
  AdamW) given `train.lr_schedule` (e.g. `@multifactor()`) as its learning rate."""
  import gin  # pylint: disable=import-outside-toplevel
  with parsed(config):
    schedule = gin.query_parameter('train.lr_schedule').scoped_configurable_fn()
    return gin.query_parameter('train.optimizer').scoped_configurable_fn(learning_rate=schedule)


def binds(config, setting):
  """Whether <config> binds `setting` on its model (e.g. 'compact_to')."""
  import gin  # pylint: disable=import-outside-toplevel
  with parsed(config) as model:
    try:
      gin.query_parameter(f'{model.selector}.{setting}')
    except ValueError:
      return False
    return True


__all__ = ['binds', 'parsed', 'shipped_model', 'shipped_optimizer']
