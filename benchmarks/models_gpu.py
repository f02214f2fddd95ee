"""Model-level GPU benchmarks: training throughput/MFU, a 1M-token ReformerLM step, decoding.

  python benchmarks/models_gpu.py mfu            # ~125M-param LMs, 2k context, bf16 compute
  python benchmarks/models_gpu.py reformer_long  # one 2^20-token sequence; peak memory
  python benchmarks/models_gpu.py decode         # cached (stream, on-device loop) vs re-run at 2k
  python benchmarks/models_gpu.py long_lm        # every LM kind's training tokens/s at 8K and 32K

Each prints JSON lines and a Markdown table. Training steps are plait's own
`make_train_step` (f32 master weights, bf16 compute, Adam), jitted, timed as the median
wall time of steps after compilation and warm-up. Peak memory is the device allocator's
`peak_bytes_in_use` (run each section in its own process so it is that section's peak).
"""
import argparse
import functools
import json
import math
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench_rows import compiled_gib, measured, save_rows  # pylint: disable=g-bad-import-order
import plait.layers as tl
from plait import models
from plait.supervised import decoding, optimizers
from plait.supervised.train_step import make_train_step


def timed(fn, *args, reps=10, warmup=2):
  for _ in range(warmup):
    out = fn(*args)
  jax.block_until_ready(out)
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out)
    times.append(time.perf_counter() - t)
  return statistics.median(times), out


def peak_gib():
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get('peak_bytes_in_use', float('nan')) / 2 ** 30


def matmul_ceiling():
  """Measured bf16 matmul rate (TFLOP/s) on this device: the MFU denominator we can reach."""
  a = jax.random.normal(jax.random.key(0), (8192, 8192), jnp.bfloat16)
  b = jax.random.normal(jax.random.key(1), (8192, 8192), jnp.bfloat16)
  f = jax.jit(lambda a, b: a @ b)
  t, _ = timed(f, a, b, reps=20)
  return 2 * 8192 ** 3 / t / 1e12


def count(weights):
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(weights))


def log_softmax_loss():
  """The cross-entropy by autodiff of log_softmax (the A/B baseline of plait's own vjp)."""
  def loss(logits, targets, weights):
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    return jnp.sum(nll * weights) / jnp.maximum(jnp.sum(weights), 1e-9)
  return tl.Fn('LogSoftmaxLoss', loss)


def train_setup(model, batch, length, vocab, loss=None):
  tokens = jax.random.randint(jax.random.key(0), (batch, length), 1, vocab, jnp.int32)
  data = (tokens, tokens, jnp.ones((batch, length), jnp.float32))
  weights, state = model.init(jax.ShapeDtypeStruct(tokens.shape, jnp.int32), rng=jax.random.key(1))
  opt = optimizers.Adam(1e-4)
  opt_state = opt.init(weights)
  step = jax.jit(make_train_step(model, loss or tl.CrossEntropyLoss(), opt,
                                 compute_dtype=jnp.bfloat16),
                 donate_argnums=(0, 2))
  return step, weights, state, opt_state, data


def run_steps(step, weights, state, opt_state, data, reps):
  rng = jax.random.key(2)
  t0 = time.perf_counter()
  weights, state, opt_state, loss, _ = step(weights, state, opt_state, data, rng)
  jax.block_until_ready(loss)
  compile_s = time.perf_counter() - t0
  for _ in range(2):
    weights, state, opt_state, loss, _ = step(weights, state, opt_state, data, rng)
  jax.block_until_ready(loss)
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    weights, state, opt_state, loss, _ = step(weights, state, opt_state, data, rng)
    jax.block_until_ready(loss)
    times.append(time.perf_counter() - t)
  return statistics.median(times), compile_s, float(loss)


def lm_flops_per_token(n_params_no_embed, n_layers, d_model, length, vocab, attention='dense'):
  """6N for matmuls (fwd+bwd) + attention scores; causal dense counted at half (flash does)."""
  matmul = 6 * (n_params_no_embed + d_model * vocab)
  attn = 6 * n_layers * d_model * length if attention == 'dense' else 0.0  # 12*L*d*T/2 causal
  return matmul + attn


def sizes(args):
  """(vocab, d_model, n_layers, n_heads, length, batch): ~125M params at 2k, or tiny."""
  if args.tiny:
    return 64, 32, 2, 2, 64, 2
  return 32768, 768, 12, 12, 2048, args.batch


def section_mfu(args):
  ceiling = 1.0 if args.tiny else matmul_ceiling()
  print(json.dumps({'matmul_bf16_tflops': ceiling}), flush=True)
  vocab, d, layers, heads, length, batch = sizes(args)
  common = dict(vocab_size=vocab, d_model=d, d_ff=4 * d, n_layers=layers, n_heads=heads,
                max_len=length, dropout=0.0, mode='train')
  configs = {
      'TransformerLM': lambda: models.TransformerLM(**common),
      'ReformerLM(lsh)': lambda: models.ReformerLM(
          **common, attention_type=functools.partial(
              tl.LSHSelfAttention, causal=True, n_hashes=2, n_buckets=max(2, length // 64), chunk_len=min(128, length // 2))),
      'ReformerLM(chunked/lsh)': lambda: models.ReformerLM(**common,
                                                           attention_type=['chunked', 'lsh']),
      'PerformerLM': lambda: models.PerformerLM(**common),
  }
  rows = []
  for name, make in configs.items():
    if args.only and name not in args.only:
      continue
    def fill(row, make=make, name=name):
      model = make()
      loss_layer = log_softmax_loss() if args.loss == 'log_softmax' else None
      step, w, s, o, data = train_setup(model, batch, length, vocab, loss_layer)
      n = count(w)
      embed = vocab * d
      t, compile_s, loss = run_steps(step, w, s, o, data, args.reps)
      tokens_s = batch * length / t
      flops = lm_flops_per_token(n - embed - d * vocab, layers, d, length, vocab,
                                 'dense' if name == 'TransformerLM' else 'other')
      row.update(params_m=n / 1e6, step_ms=t * 1e3, tokens_per_s=tokens_s,
                 model_tflops=tokens_s * flops / 1e12, compile_s=compile_s, loss=loss,
                 mfu_vs_989=tokens_s * flops / 989e12,
                 mfu_vs_measured=tokens_s * flops / (ceiling * 1e12), peak_gib=peak_gib())
    rows.append(measured({'model': name, 'batch': batch, 'length': length,
                          'loss_vjp': args.loss}, fill))
  return rows


def section_reformer_long(args):
  rows = []
  for length in args.lengths or [1048576]:
    rows_ = 2 ** (int(math.log2(length)) // 2)
    assert rows_ * (length // rows_) == length, 'use a power-of-two length (axial positions)'
    n_buckets = length // 128
    a = 2 ** (int(math.log2(n_buckets)) // 2)
    model = models.ReformerLM(
        vocab_size=256, d_model=512, d_ff=2048, n_layers=args.layers, n_heads=8,
        max_len=length, dropout=0.0, ff_chunk_size=16384,
        output_chunk_size=args.output_chunk_size,
        axial_pos_shape=(rows_, length // rows_), d_axial_pos_embs=(256, 256),
        attention_type=functools.partial(tl.LSHSelfAttention, causal=True, n_hashes=args.n_hashes,
                                         n_buckets=[a, n_buckets // a], chunk_len=128,
                                         head_chunk_size=1,
                                         implementation=args.lsh_implementation),
        mode='train')
    def fill(row, model=model, length=length):
      step, w, s, o, data = train_setup(model, 1, length, 256)
      compiled = step.lower(w, s, o, data, jax.random.key(2)).compile()
      row['compiled_temp_gib'] = compiled.memory_analysis().temp_size_in_bytes / 2 ** 30
      if not args.compile_only:
        t, compile_s, loss = run_steps(step, w, s, o, data, args.reps)
        row.update(step_s=t, compile_s=compile_s, loss=loss, peak_gib=peak_gib(),
                   params_m=count(w) / 1e6)
    rows.append(measured({'model': 'ReformerLM', 'length': length, 'layers': args.layers,
                          'n_hashes': args.n_hashes, 'lsh': args.lsh_implementation or 'auto',
                          'output_chunk_size': args.output_chunk_size}, fill))
  return rows


LONG_LM_TOKENS_PER_STEP = 65536


def long_lm_models(length, d, layers, heads, vocab):
  """The four LM kinds at one size, each on its GPU attention path (cuDNN flash or kernel).

  LSH: 2 hashes, chunks of 256 (one chunk back), one bucket per chunk, as attention_gpu.py.
  PerformerLM(keep): PerformerLM with recompute_features=False (the feature maps kept for the
  backward: faster attention, more memory; RESULTS 41).
  """
  common = dict(vocab_size=vocab, d_model=d, d_ff=4 * d, n_layers=layers, n_heads=heads,
                max_len=length, dropout=0.0, mode='train')
  chunk = min(256, length // 2)
  lsh = functools.partial(tl.LSHSelfAttention, causal=True, n_hashes=2,
                          n_buckets=max(2, length // chunk), chunk_len=chunk)
  return {
      'TransformerLM': lambda: models.TransformerLM(**common),
      'ReformerLM(lsh)': lambda: models.ReformerLM(**common, attention_type=lsh),
      'PerformerLM': lambda: models.PerformerLM(**common),
      'PerformerLM(keep)': lambda: models.PerformerLM(**common, recompute_features=False),
      'BigBirdLM': lambda: models.BigBirdLM(**common),
  }


def section_long_lm(args):
  """Training tokens/s of each LM kind at 8K and 32K tokens, relative to TransformerLM.

  d_model 512, 6 layers, 8 heads, byte vocabulary, 64K tokens per step (batch 8 at 8K,
  2 at 32K). Memory is the compiled step's (arguments + outputs + temporaries - aliased),
  so every kind is measured in one process.
  """
  lengths = [512] if args.tiny else args.lengths or [8192, 32768]
  d, layers, heads, vocab = (32, 2, 2, 64) if args.tiny else (512, args.layers, 8, 256)
  rows = []
  for length in lengths:
    batch = max(1, (64 if args.tiny else LONG_LM_TOKENS_PER_STEP) // length)
    baseline = None
    for name, make in long_lm_models(length, d, layers, heads, vocab).items():
      if args.only and name not in args.only:
        continue
      def fill(row, make=make, batch=batch, length=length):
        step, w, s, o, data = train_setup(make(), batch, length, vocab)
        start = time.perf_counter()
        compiled = step.lower(w, s, o, data, jax.random.key(2)).compile()   # timed once, run
        row.update(compile_s=time.perf_counter() - start, compiled_gib=compiled_gib(compiled))
        t, _, loss = run_steps(compiled, w, s, o, data, args.reps)
        row.update(step_ms=t * 1e3, tokens_per_s=batch * length / t, loss=loss)
      row = measured({'model': name, 'length': length, 'batch': batch}, fill)
      if name == 'TransformerLM':
        baseline = row
      if baseline and 'tokens_per_s' in row and 'tokens_per_s' in baseline:
        row['vs_transformer'] = row['tokens_per_s'] / baseline['tokens_per_s']
      rows.append(row)
  return rows


def section_decode(args):
  vocab, d, layers, heads, length, batch = sizes(args)
  rows = []
  for name, make in {'TransformerLM': models.TransformerLM,
                     'PerformerLM': models.PerformerLM}.items():
    if args.only and name not in args.only:
      continue
    kw = dict(vocab_size=vocab, d_model=d, d_ff=4 * d, n_layers=layers, n_heads=heads,
              max_len=length, dropout=0.0)
    train_model = make(**kw, mode='eval')
    sig = jax.ShapeDtypeStruct((batch, length), jnp.int32)
    weights, state = train_model.init(sig, rng=jax.random.key(0))
    weights = jax.tree_util.tree_map(lambda x: x.astype(jnp.bfloat16), weights)
    predict = make(**kw, mode='predict')
    pstate0 = decoding.fresh_state(predict, jax.ShapeDtypeStruct((batch, 1), jnp.int32))
    step = jax.jit(lambda w, s, t: predict.pure_fn(t, w, s, None))
    tok = jnp.ones((batch, 1), jnp.int32)
    # Cached: per-token time over all 2k positions, and in the first/last 256.
    s = pstate0
    logits, s = step(weights, s, tok)
    jax.block_until_ready(logits)
    s = pstate0
    per_token = []
    for _ in range(length):
      t = time.perf_counter()
      logits, s = step(weights, s, tok)
      jax.block_until_ready(logits)
      per_token.append(time.perf_counter() - t)
    cached = statistics.median(per_token)
    first, last = statistics.median(per_token[:256]), statistics.median(per_token[-256:])
    # Re-run: one full eval forward of the 2k prefix per token (fixed shape, one compile).
    full = jax.jit(lambda w, x: train_model.pure_fn(x, w, state, None)[0][:, -1])
    x = jax.random.randint(jax.random.key(1), (batch, length), 1, vocab, jnp.int32)
    rerun, _ = timed(full, weights, x, reps=5)
    # On-device loop: all `length` tokens (greedy, from the start token) in ONE jitted
    # call (prompt call + lax.while_loop), no host round trip per token; per-token time.
    generate = functools.partial(decoding.autoregressive_sample, predict, batch_size=batch,
                                 temperature=0.0, max_length=length, weights=weights)
    loop, out = timed(generate, reps=3, warmup=1)
    assert out.shape == (batch, length), out.shape
    on_device = loop / length
    row = {'model': name, 'batch': batch, 'positions': length,
           'cached_ms_per_token': cached * 1e3, 'first256_ms': first * 1e3,
           'last256_ms': last * 1e3, 'rerun_ms_per_token_at_2k': rerun * 1e3,
           'on_device_ms_per_token': on_device * 1e3,
           'on_device_speedup_at_2k': rerun / on_device,
           'on_device_tokens_per_s': batch / on_device,
           # Re-running costs grow with the prefix: averaged over 1..2k that is ~half the
           # 2k-prefix forward when compute-bound; we report the 2k point and the mean bound.
           'speedup_at_2k': rerun / cached, 'speedup_mean_prefix': 0.5 * rerun / cached,
           'cached_tokens_per_s': batch / cached}
    rows.append(row)
    print(json.dumps(row), flush=True)
  return rows


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('section', choices=['mfu', 'reformer_long', 'decode', 'long_lm'])
  p.add_argument('--batch', type=int, default=16)
  p.add_argument('--reps', type=int, default=5)
  p.add_argument('--layers', type=int, default=6)
  p.add_argument('--n_hashes', type=int, default=2)
  p.add_argument('--lengths', type=int, nargs='+', default=None,
                 help='reformer_long: 1048576; long_lm: 8192 32768')
  p.add_argument('--compile_only', action='store_true')
  p.add_argument('--loss', choices=['own_vjp', 'log_softmax'], default='own_vjp',
                 help='mfu: plait\'s cross-entropy vjp, or autodiff of log_softmax (A/B)')
  p.add_argument('--output_chunk_size', type=int, default=16384,
                 help='reformer_long: output head in chunks of this many positions (0: whole)')
  p.add_argument('--lsh_implementation', choices=['auto', 'xla', 'pallas'], default=None,
                 help='reformer_long: the LSH layers\' implementation= (default: auto)')
  p.add_argument('--tiny', action='store_true', help='CPU smoke sizes (numbers meaningless)')
  p.add_argument('--only', nargs='*', default=None)
  p.add_argument('--out', default=None)
  args = p.parse_args(argv)
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  rows = {'mfu': section_mfu, 'reformer_long': section_reformer_long,
          'decode': section_decode, 'long_lm': section_long_lm}[args.section](args)
  save_rows(rows, args.out)
  keys = sorted({k for r in rows for k in r})
  print('\n| ' + ' | '.join(keys) + ' |\n|' + ' --- |' * len(keys))
  for r in rows:
    print('| ' + ' | '.join(f'{r[k]:.4g}' if isinstance(r.get(k), float) else str(r.get(k, ''))
                            for k in keys) + ' |')


if __name__ == '__main__':
  sys.exit(main())
