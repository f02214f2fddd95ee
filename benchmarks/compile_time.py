"""Where a config's time to first step goes: tracing, lowering, XLA compilation of its train step.

  python benchmarks/compile_time.py reformer_crime_and_punishment bigbird_crime_and_punishment
  python benchmarks/compile_time.py --all --json runs/compile_time.json

For each shipped config (gin bindings applied, no data read, nothing allocated: the inputs are
abstract), builds the train step exactly as the Loop does (model, loss, optimizer, mixed
precision, skip_non_finite, donation), then times `jit(step).trace(...)` (Python: the layers
run on tracers), `.lower()` (jaxpr -> StableHLO) and `.compile()` (XLA), and counts the
StableHLO text size. With --cache_dir the compilation goes through JAX's persistent cache, so
a second run of the script shows what a resumed run pays.
"""
import argparse
import os
import sys
import time

import bench_rows  # pylint: disable=g-bad-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(name, bindings=(), run_steps=0):
  """{'config', 'trace_s', 'lower_s', 'compile_s', 'hlo_kchars'} of `name`'s train step."""
  import gin  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from plait import demo, rl_free_configs  # pylint: disable=import-outside-toplevel
  from plait.layers import metrics  # pylint: disable=import-outside-toplevel
  # pylint: disable=import-outside-toplevel
  from plait.supervised import tasks, train_step as step_lib, trainer
  gin.clear_config()
  trainer.parse_config([rl_free_configs.path(name)], list(bindings))
  sig = demo.configured_signature()
  model = demo.configured_model('train')
  optimizer = gin.query_parameter('train.optimizer').scoped_configurable_fn
  loss = metrics.CrossEntropyLoss()
  opt = tasks.TrainTask(iter(()), loss, optimizer, 1e-3).optimizer
  dtype = trainer.ConfiguredLoopSettings().compute_jnp_dtype
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
  compiled = lowered.compile()
  times['compile_s'] = time.perf_counter() - t
  if run_steps:
    times['step_ms'] = _time_steps(compiled, model, opt, sig, run_steps)
  gin.clear_config()
  return {'config': name, 'backend': jax.default_backend(), **times,
          'hlo_kchars': len(hlo) // 1000}


def _time_steps(compiled, model, opt, sig, n):
  """Median ms of `n` runs of the compiled step on real (random) weights and tokens."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  device = jax.devices()[0]
  weights, state = jax.jit(lambda r: model.init(sig, r))(jax.random.key(0))
  args = jax.device_put((weights, state, opt.init(weights)), device)
  tokens = np.random.default_rng(0).integers(1, 200, sig.shape).astype(np.int32)
  batch = (jnp.asarray(tokens), jnp.asarray(tokens), jnp.ones(sig.shape, jnp.float32))
  flag = jax.device_put(jnp.zeros((), jnp.bool_), device)
  times = []
  for i in range(n + 1):
    start = time.perf_counter()
    out = compiled(*args, batch, jax.random.key(i), flag)
    jax.block_until_ready(out)
    times.append(time.perf_counter() - start)
    args, flag = out[:3], out[5]
  return 1000 * float(np.median(times[1:]))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('configs', nargs='*')
  p.add_argument('--all', action='store_true', help='every full (non-tiny) config')
  p.add_argument('--config', action='append', default=[], help='extra gin binding')
  p.add_argument('--cache_dir', default=None, help="JAX's persistent compilation cache")
  p.add_argument('--json', default=None)
  p.add_argument('--run', type=int, default=0, help='also time this many steps (real arrays)')
  p.add_argument('--source', default=REPO, help='the plait checkout to measure (e.g. an old one)')
  args = p.parse_args(argv)
  sys.path.insert(0, args.source)
  import jax  # pylint: disable=import-outside-toplevel
  if args.cache_dir:
    jax.config.update('jax_compilation_cache_dir', args.cache_dir)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  bench_rows.config_rows(args.configs, args.all,
                         lambda name: measure(name, args.config, args.run), args.json)
  return 0


if __name__ == '__main__':
  sys.exit(main())
