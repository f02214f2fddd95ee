"""Multi-GPU benchmark: data-parallel scaling, loss equality and sharded memory.

For TransformerLM and ReformerLM this trains the same steps on the same global
batches with 1 device and with all devices (a 'data' mesh) and reports
  * tokens/s on 1 and N devices and the speedup (target >= 1.8x on 2 GPUs);
  * the largest difference between the two per-step loss curves (rounding only);
then sizes one ReformerLM train step at a long length, per device, with the
length axis ('seq') or the weights' feature axis ('model') split over all devices,
from XLA's compiled memory_analysis() (and, on GPU, the measured peak of one run).

  python benchmarks/multi_gpu.py                 # on a machine with >= 2 GPUs
  python benchmarks/multi_gpu.py --smoke         # 8 fake CPU devices, tiny sizes

NVLink multicast (NVLS) stays off: NCCL_NVLS_ENABLE=0 is set before jax is imported.
"""
import argparse
import json
import os
import sys
import time

os.environ['NCCL_NVLS_ENABLE'] = '0'
if '--smoke' in sys.argv:
  os.environ['JAX_PLATFORMS'] = 'cpu'
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             ' --xla_force_host_platform_device_count=8').strip()

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

import plait.layers as tl  # pylint: disable=g-import-not-at-top,wrong-import-position
from plait import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from plait.shapes import ShapeDtype  # pylint: disable=g-import-not-at-top,wrong-import-position
from plait.supervised import distributed, optimizers  # pylint: disable=g-import-not-at-top,wrong-import-position
from plait.supervised import train_step as step_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

MIB = 2.0 ** 20


def build(name, args, length):
  kwargs = dict(vocab_size=args.vocab, d_model=args.d_model, d_ff=4 * args.d_model,
                n_layers=args.n_layers, n_heads=args.n_heads, max_len=length, dropout=0.0)
  if name == 'transformer':
    return models.TransformerLM(**kwargs)
  chunk = min(args.chunk_len, length // 2)
  n_buckets = max(2, length // chunk)
  if n_buckets > 256:  # factorized buckets: hashing costs (L, sum of factors), not (L, n_buckets)
    first = 2 ** ((n_buckets.bit_length() - 1) // 2)
    n_buckets = [first, max(2, n_buckets // first)]
  attention = lambda **kw: tl.LSHSelfAttention(causal=True, chunk_len=chunk, n_hashes=2,
                                               n_buckets=n_buckets, **kw)
  return models.ReformerLM(attention_type=attention, **kwargs)


def batches(args, n):
  """n deterministic global batches (inputs, targets, weights) of random tokens."""
  out = []
  for i in range(n):
    r = np.random.default_rng([11, i])
    x = r.integers(1, args.vocab, (args.batch, args.length)).astype(np.int32)
    out.append((x, x, np.ones(x.shape, np.float32)))
  return out


def train(model, args, mesh, data):
  """Per-step losses and tokens/s of the jitted train step on `mesh` (warmup excluded)."""
  optimizer = optimizers.Adam(args.learning_rate)
  weights, state = model.init(ShapeDtype((args.batch, args.length), jnp.int32),
                              jax.random.key(0))
  opt_state = optimizer.init(weights)
  step = jax.jit(distributed.keep_shardings(
      step_lib.make_train_step(model, tl.CrossEntropyLoss(), optimizer), mesh),
                 donate_argnums=(0, 1, 2) if jax.default_backend() != 'cpu' else ())
  weights, state, opt_state = distributed.place((weights, state, opt_state), mesh)
  placed = [distributed.shard_batch(b, mesh) for b in data]
  losses, times = [], []
  for i, batch in enumerate(placed):
    start = time.perf_counter()
    weights, state, opt_state, loss, _ = step(weights, state, opt_state, batch,
                                              jax.random.key(i))
    losses.append(float(loss))  # waits for the step
    times.append(time.perf_counter() - start)
  timed = times[args.warmup:] or times[-1:]
  return losses, args.batch * args.length * len(timed) / sum(timed)


def data_parallel(args):
  data = batches(args, args.warmup + args.steps)
  n = jax.device_count()
  rows = []
  for name in args.models:
    model = build(name, args, args.length)
    one_losses, one_tps = train(model, args, distributed.make_mesh(devices=jax.devices()[:1]),
                                data)
    many_losses, many_tps = train(model, args, distributed.make_mesh(), data)
    diff = np.abs(np.array(one_losses) - np.array(many_losses))
    rows.append({'model': name, 'devices': n, 'tokens_per_s_1': one_tps,
                 'tokens_per_s_n': many_tps, 'speedup': many_tps / one_tps,
                 'efficiency': many_tps / one_tps / n,
                 'max_loss_diff': float(diff.max()),
                 'max_rel_loss_diff': float((diff / np.abs(one_losses)).max()),
                 'losses_1': one_losses, 'losses_n': many_losses})
    print(f'{name:12s} 1 device {one_tps:10.0f} tok/s | {n} devices {many_tps:10.0f} tok/s | '
          f'speedup {many_tps / one_tps:.2f}x | max |loss diff| {diff.max():.2e}', flush=True)
  return rows


def sharded_memory(args):
  """Per-device memory of one --memory_model step at --memory_length: 1 device vs split."""
  n = jax.device_count()
  length = args.memory_length
  model = build(args.memory_model, args, length)
  sig = [ShapeDtype((1, length), jnp.int32)] * 2 + [ShapeDtype((1, length), jnp.float32)]
  loss, optimizer = tl.CrossEntropyLoss(), optimizers.Adam(args.learning_rate)
  meshes = {'1 device': distributed.make_mesh(devices=jax.devices()[:1]),
            f'seq x{n}': distributed.make_mesh(data=1, seq=n),
            f'model x{n}': distributed.make_mesh(data=1, model=n)}
  rows = []
  for label, mesh in meshes.items():
    row = {'model': args.memory_model, 'layout': label, 'length': length,
           **distributed.train_step_memory(model, loss, optimizer, sig, mesh)}
    rows.append(row)
    print(f'{args.memory_model} length {length:>9d} {label:10s} per device: total '
          f'{row["total"] / MIB:9.1f} MiB (arguments {row["arguments"] / MIB:.1f}, '
          f'temp {row["temp"] / MIB:.1f})', flush=True)
  return rows


def measured_peak(args):
  """On GPU: the measured peak bytes per device after one seq-sharded step (None on CPU)."""
  if jax.default_backend() != 'gpu' or not args.run_memory:
    return None
  saved = args.batch, args.length
  args.batch, args.length = 1, args.memory_length
  model = build(args.memory_model, args, args.memory_length)
  train(model, args, distributed.make_mesh(data=1, seq=jax.device_count()), batches(args, 1))
  args.batch, args.length = saved
  return [d.memory_stats().get('peak_bytes_in_use') for d in jax.local_devices()]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--smoke', action='store_true',
                      help='8 fake CPU devices and tiny sizes (a quick check that it runs)')
  parser.add_argument('--models', nargs='+', default=['transformer', 'reformer'])
  parser.add_argument('--batch', type=int, default=16, help='global batch')
  parser.add_argument('--length', type=int, default=2048)
  parser.add_argument('--vocab', type=int, default=256)
  parser.add_argument('--d_model', type=int, default=512)
  parser.add_argument('--n_layers', type=int, default=6)
  parser.add_argument('--n_heads', type=int, default=8)
  parser.add_argument('--chunk_len', type=int, default=64)
  parser.add_argument('--learning_rate', type=float, default=1e-4)
  parser.add_argument('--steps', type=int, default=20, help='timed steps')
  parser.add_argument('--warmup', type=int, default=3, help='untimed first steps (compile)')
  parser.add_argument('--memory_length', type=int, default=2 ** 21,
                      help='sequence length for the sharded-memory table (2M tokens)')
  parser.add_argument('--memory_model', default='reformer', choices=['transformer', 'reformer'])
  parser.add_argument('--run_memory', action='store_true',
                      help='on GPU, also run one sharded step at --memory_length')
  parser.add_argument('--json', help='write the results here')
  args = parser.parse_args(argv)
  if args.smoke:
    args.batch, args.length, args.vocab, args.d_model = 8, 32, 32, 32
    args.n_layers, args.n_heads, args.chunk_len = 1, 2, 8
    args.steps, args.warmup, args.memory_length = 2, 1, 256
  if jax.device_count() < 2:
    print(f'multi_gpu: only {jax.device_count()} device(s); the 1-vs-N comparison needs >= 2 '
          '(try --smoke on CPU).', file=sys.stderr)
    return 1
  print(f'{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()}), '
        f'NCCL_NVLS_ENABLE={os.environ["NCCL_NVLS_ENABLE"]}', flush=True)
  results = {'devices': jax.device_count(), 'backend': jax.default_backend(),
             'device_kind': jax.devices()[0].device_kind, 'config': vars(args),
             'data_parallel': data_parallel(args), 'memory': sharded_memory(args),
             'measured_peak_bytes': measured_peak(args)}
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=1)
  print(json.dumps({k: results[k] for k in ('devices', 'data_parallel', 'memory')}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
