"""Where a config's time to first step goes: tracing, lowering, XLA compilation of its train step.

  python benchmarks/compile_time.py reformer_crime_and_punishment transformer_lm_crime_and_punishment
  python benchmarks/compile_time.py --all --json runs/compile_time.json

For each shipped config (gin bindings applied, no data read, nothing allocated: the inputs are
abstract), builds the train step exactly as the Loop does (model, loss, optimizer, mixed
precision, skip_non_finite, donation), then times `jit(step).trace(...)` (Python: the layers
run on tracers), `.lower()` (jaxpr -> StableHLO) and `.compile()` (XLA), and counts the
StableHLO text size. With --cache_dir the compilation goes through JAX's persistent cache, so
a second run of the script shows what a resumed run pays.
"""
import argparse
import json
import sys
import time


def measure(name, bindings=()):
  """{'config', 'trace_s', 'lower_s', 'compile_s', 'hlo_kchars'} of `name`'s train step."""
  import gin  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from plait import demo, rl_free_configs  # pylint: disable=import-outside-toplevel
  from plait.layers import metrics  # pylint: disable=import-outside-toplevel
  from plait.supervised import tasks, train_step as step_lib, trainer  # pylint: disable=import-outside-toplevel
  gin.clear_config()
  trainer.parse_config([rl_free_configs.path(name)], list(bindings))
  sig = demo.configured_signature()
  model = demo.configured_model('train')
  optimizer = gin.query_parameter('train.optimizer').scoped_configurable_fn
  loss = metrics.CrossEntropyLoss()
  opt = tasks.TrainTask(iter(()), loss, optimizer, 1e-3).optimizer
  dtype = gin.query_parameter('train.compute_dtype') if _bound('train.compute_dtype') else None
  dtype = jnp.dtype(dtype) if dtype else None
  weights, state = jax.eval_shape(lambda: model.init(sig, jax.random.key(0)))
  opt_state = jax.eval_shape(opt.init, weights)
  batch = tuple(jax.ShapeDtypeStruct(sig.shape, t) for t in (jnp.int32, jnp.int32, jnp.float32))
  step = jax.jit(step_lib.skip_non_finite(step_lib.make_train_step(model, loss, opt, dtype)),
                 donate_argnums=(0, 1, 2))
  rng = jax.eval_shape(lambda: jax.random.key(0))
  times = {}
  t = time.perf_counter()
  traced = step.trace(weights, state, opt_state, batch, rng, jax.ShapeDtypeStruct((), jnp.bool_))
  times['trace_s'] = time.perf_counter() - t
  t = time.perf_counter()
  lowered = traced.lower()
  times['lower_s'] = time.perf_counter() - t
  hlo = lowered.as_text()
  t = time.perf_counter()
  lowered.compile()
  times['compile_s'] = time.perf_counter() - t
  gin.clear_config()
  return {'config': name, 'backend': jax.default_backend(), **times,
          'hlo_kchars': len(hlo) // 1000}


def _bound(selector):
  import gin  # pylint: disable=import-outside-toplevel
  try:
    gin.query_parameter(selector)
    return True
  except ValueError:
    return False


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('configs', nargs='*')
  p.add_argument('--all', action='store_true', help='every full (non-tiny) config')
  p.add_argument('--config', action='append', default=[], help='extra gin binding')
  p.add_argument('--cache_dir', default=None, help="JAX's persistent compilation cache")
  p.add_argument('--json', default=None)
  args = p.parse_args(argv)
  import jax  # pylint: disable=import-outside-toplevel
  if args.cache_dir:
    jax.config.update('jax_compilation_cache_dir', args.cache_dir)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  from plait import rl_free_configs  # pylint: disable=import-outside-toplevel
  names = args.configs or []
  if args.all:
    names += [n for n in rl_free_configs.names() if not n.endswith('_tiny')]
  rows = []
  for name in names:
    row = measure(name, args.config)
    rows.append(row)
    print(json.dumps(row), flush=True)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(rows, f, indent=1)
  return 0


if __name__ == '__main__':
  sys.exit(main())
