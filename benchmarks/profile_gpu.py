"""Where the GPU time goes: kernel time per step from a JAX profiler trace.

  python benchmarks/profile_gpu.py train   # the MFU TransformerLM step (models_gpu.py mfu)
  python benchmarks/profile_gpu.py decode  # one cached decoding token (on-device loop)
  python benchmarks/profile_gpu.py attention --kind favor --length 65536 --causal
      # one attention layer's fwd+bwd, a kind of attention_gpu.py (layer or core)
  python benchmarks/profile_gpu.py lra --model performer --length 4096
      # one training step of lra.py's speed model (batch 32)
  python benchmarks/profile_gpu.py config --config lra_pathfinder_transformer
      # one training step of a shipped config's model on its first training batch

Traces a few steps with `jax.profiler.trace`, reads the trace's device events back, and
prints the kernels by total time per step (count per step, % of device time), grouped
into classes (matmul, attention, fusion, copy, ...). Device busy time is the sum of
kernel durations; compare it with the wall time per step to see launch gaps. `--trace_dir`
keeps the raw trace (open it in Perfetto).
"""
import argparse
import collections
import glob
import gzip
import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attention_gpu  # pylint: disable=g-import-not-at-top,wrong-import-position
import lra  # pylint: disable=g-import-not-at-top,wrong-import-position
import models_gpu  # pylint: disable=g-import-not-at-top,wrong-import-position
import shipped  # pylint: disable=g-import-not-at-top,wrong-import-position
from plait import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from plait.supervised import decoding  # pylint: disable=g-import-not-at-top,wrong-import-position

CLASSES = (('attention', ('flash', 'fmha', 'cudnn', 'sdpa')),
           ('matmul', ('gemm', 'cublas', 'cutlass', 'xmma', 'sm90', 'nvjet', 'triton_gemm')),
           ('copy/memset', ('memcpy', 'memset', 'copy')),
           ('reduce', ('reduce',)),
           ('fusion', ('fusion', 'loop_', 'input_', 'triton')))


def kernel_class(name):
  low = name.lower()
  for cls, keys in CLASSES:
    if any(k in low for k in keys):
      return cls
  return 'other'


def device_events(trace_dir):
  """(name, duration µs) of every kernel/memcpy event on a GPU in the trace under trace_dir."""
  path, = glob.glob(os.path.join(trace_dir, '**', '*.trace.json.gz'), recursive=True)
  with gzip.open(path) as f:
    events = json.load(f)['traceEvents']
  def named(kind, key):
    return {key(e): str(e.get('args', {}).get('name', '')) for e in events
            if e.get('ph') == 'M' and e.get('name') == kind}
  gpu_pids = {p for p, n in named('process_name', lambda e: e['pid']).items()
              if '/device:GPU' in n}
  threads = {k: n for k, n in named('thread_name', lambda e: (e['pid'], e.get('tid'))).items()
             if k[0] in gpu_pids}
  # Kernels live on the "Stream #..." lines; other lines of the device re-list them per op.
  streams = {k for k, n in threads.items() if n.startswith('Stream')} or set(threads)
  print(json.dumps({'gpu_threads': sorted(set(threads.values()))}), flush=True)
  return [(e['name'], float(e.get('dur', 0))) for e in events
          if e.get('ph') == 'X' and (e.get('pid'), e.get('tid')) in streams]


def summarize(events, n_steps, wall_s, top):
  by_name = collections.defaultdict(lambda: [0, 0.0])
  by_class = collections.defaultdict(float)
  for name, dur in events:
    by_name[name][0] += 1
    by_name[name][1] += dur
    by_class[kernel_class(name)] += dur
  busy = sum(d for _, d in events) / n_steps
  summary = {'wall_ms_per_step': wall_s * 1e3 / n_steps, 'device_busy_ms_per_step': busy / 1e3,
             'kernels_per_step': len(events) / n_steps,
             'classes_ms_per_step': {k: v / n_steps / 1e3 for k, v in
                                     sorted(by_class.items(), key=lambda kv: -kv[1])}}
  print(json.dumps(summary), flush=True)
  print('\n| kernel | class | per step | ms/step | % busy |\n| --- | --- | --- | --- | --- |')
  for name, (count, dur) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]:
    print(f'| {name[:90]} | {kernel_class(name)} | {count / n_steps:.3g} | '
          f'{dur / n_steps / 1e3:.4g} | {100 * dur / n_steps / busy:.1f} |')
  return summary


def trace(fn, n_steps, trace_dir):
  jax.block_until_ready(fn())
  jax.block_until_ready(fn())
  with jax.profiler.trace(trace_dir):
    t = time.perf_counter()
    for _ in range(n_steps):
      out = fn()
    jax.block_until_ready(out)
    wall = time.perf_counter() - t
  return wall


def train_fn(args):
  vocab, d, layers, heads, length, batch = models_gpu.sizes(args)
  model = models.TransformerLM(vocab_size=vocab, d_model=d, d_ff=4 * d, n_layers=layers,
                               n_heads=heads, max_len=length, dropout=0.0, mode='train')
  step, w, s, o, data = models_gpu.train_setup(model, batch, length, vocab)
  box = [w, s, o]
  rng = jax.random.key(2)

  def run():
    box[0], box[1], box[2], loss, _ = step(box[0], box[1], box[2], data, rng)
    return loss
  return run, 1


def decode_fn(args):
  vocab, d, layers, heads, length, batch = models_gpu.sizes(args)
  kw = dict(vocab_size=vocab, d_model=d, d_ff=4 * d, n_layers=layers, n_heads=heads,
            max_len=length, dropout=0.0)
  weights, _ = models.TransformerLM(**kw, mode='eval').init(
      jax.ShapeDtypeStruct((batch, length), jnp.int32), rng=jax.random.key(0))
  weights = jax.tree_util.tree_map(lambda x: x.astype(jnp.bfloat16), weights)
  predict = models.TransformerLM(**kw, mode='predict')
  n = args.decode_tokens

  def run():
    return decoding.autoregressive_sample(predict, batch_size=batch, temperature=0.0,
                                          max_length=n, weights=weights)
  return run, n


def attention_fn(args):
  if args.kind in attention_gpu.CORES:
    step, step_args, _ = attention_gpu.CORES[args.kind](args.causal, args.length)
  elif args.kind in attention_gpu.MAKERS:
    layer = attention_gpu.MAKERS[args.kind](args.causal, args.length)
    step, step_args = attention_gpu.layer_step(layer, args.length)
  else:
    raise SystemExit(f'profile_gpu.py attention: unknown --kind {args.kind!r}; one of '
                     f'{sorted(attention_gpu.CORES) + sorted(attention_gpu.MAKERS)}.')
  return lambda: step(*step_args), 1


def lra_fn(args):
  return repeated_step(*lra.speed_step(args.model, args.length, args.tiny))


def config_fn(args):
  """One training step of a shipped config's model in its compute dtype, on the config's first
  training batch (lra.py's `compiled_train_step`: AdamW, whatever the config's optimizer)."""
  import gin  # pylint: disable=import-outside-toplevel
  from plait.supervised import trainer  # pylint: disable=import-outside-toplevel
  with shipped.parsed(args.config) as configured:
    model = configured.scoped_configurable_fn(mode='train')
    batch = tuple(jnp.asarray(x) for x in next(iter(
        gin.query_parameter('train.inputs').scoped_configurable_fn()())))
    dtype = jnp.dtype(trainer.ConfiguredLoopSettings().compute_dtype)
  return repeated_step(*lra.compiled_train_step(model, batch, dtype))


def repeated_step(compiled, call_args):
  """(a call running the compiled donating train step on the previous call's outputs, 1)."""
  box = [call_args]

  def run():
    out = compiled(*box[0])
    box[0] = (out.weights, out.state, out.opt_state) + box[0][3:]
    return out.weights
  return run, 1


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('section', choices=['train', 'decode', 'attention', 'lra', 'config'])
  p.add_argument('--batch', type=int, default=16)
  p.add_argument('--steps', type=int, default=3, help='traced calls')
  p.add_argument('--decode_tokens', type=int, default=256, help='decode: tokens per call')
  p.add_argument('--top', type=int, default=25)
  p.add_argument('--tiny', action='store_true', help='CPU smoke sizes')
  p.add_argument('--kind', default='favor', help='attention: a kind of attention_gpu.py')
  p.add_argument('--causal', action='store_true', help='attention: causal (else bidirectional)')
  p.add_argument('--length', type=int, default=65536, help='attention, lra: tokens')
  p.add_argument('--model', default='performer', help='lra: a model kind of lra.py')
  p.add_argument('--config', default='lra_pathfinder_transformer',
                 help='config: a shipped config name (plait/rl_free_configs)')
  p.add_argument('--trace_dir', default=None)
  p.add_argument('--out', default=None)
  args = p.parse_args(argv)
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  fn, units = {'train': train_fn, 'decode': decode_fn, 'attention': attention_fn,
               'lra': lra_fn, 'config': config_fn}[args.section](args)
  with tempfile.TemporaryDirectory() as tmp:
    trace_dir = args.trace_dir or tmp
    wall = trace(fn, args.steps, trace_dir)
    events = device_events(trace_dir)
  summary = summarize(events, args.steps * units, wall, args.top)
  summary.update(section=args.section, batch=args.batch, device=jax.devices()[0].device_kind)
  if args.section == 'attention':
    summary.update(kind=args.kind, length=args.length, causal=args.causal)
  if args.section == 'config':
    summary.update(config=args.config)
  if args.section == 'lra':
    summary.update(model=args.model, length=args.length, batch=2 if args.tiny else 32)
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(summary, f, indent=1)


if __name__ == '__main__':
  sys.exit(main())
