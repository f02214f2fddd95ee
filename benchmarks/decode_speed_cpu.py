"""Cached (predict-mode) vs re-run decoding speed on CPU: 512 tokens, tiny LMs.

  python benchmarks/decode_speed_cpu.py [--tokens 512] [--models TransformerLM,ReformerLM]

Cached decoding keeps KV/LSH caches in state and runs either as a Python loop of one
jitted call per token (the stream, autoregressive_sample(on_device=False)) or as one jit
holding the whole token loop (lax.while_loop, the default on_device=True); the re-run
reference runs the whole prefix (padded to a multiple of 64, so only a few lengths are
compiled) for every token. Compile time is excluded: each is run once to warm up with the
same arguments. Prints tokens/s each way, speedups over re-run, and checks all three give
the same greedy tokens.
"""
import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from plait import layers as tl
from plait import models
from plait.supervised import decoding


def tiny(name, max_len):
  common = dict(vocab_size=256, d_model=64, d_ff=128, n_layers=2, n_heads=4, max_len=max_len,
                dropout=0.0)
  if name == 'TransformerLM':
    return functools.partial(models.TransformerLM, **common), 'eval'
  lsh = functools.partial(tl.LSHSelfAttention, causal=True, n_hashes=2, n_buckets=8,
                          chunk_len=64)
  chunked = functools.partial(tl.ChunkedCausalAttention, chunk_len=64)
  return functools.partial(models.ReformerLM, attention_type=[chunked, lsh], **common), 'predict'


def timed(fn):
  start = time.perf_counter()
  out = np.asarray(fn())
  return out, time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--tokens', type=int, default=512)
  parser.add_argument('--models', default='TransformerLM,ReformerLM')
  args = parser.parse_args()
  n = args.tokens
  print(f'backend={jax.default_backend()} devices={jax.devices()} tokens={n}')
  for name in args.models.split(','):
    make, slow_mode = tiny(name, max_len=n + 64)
    train = make(mode='train')
    weights, _ = jax.jit(lambda r, m=train: m.init(  # pylint: disable=cell-var-from-loop
        decoding.shapes.ShapeDtype((1, 64), jnp.int32), r))(jax.random.key(0))
    predict, slow = make(mode='predict'), make(mode=slow_mode)
    kw = dict(batch_size=1, temperature=0.0, weights=weights, max_length=n)
    run_stream = functools.partial(decoding.autoregressive_sample, predict, on_device=False, **kw)
    run_loop = functools.partial(decoding.autoregressive_sample, predict, on_device=True, **kw)
    decoding.autoregressive_sample(predict, on_device=False, **dict(kw, max_length=4))  # compile
    stream, t_stream = timed(run_stream)
    run_loop()                                                              # compile
    loop, t_loop = timed(run_loop)
    decoding.rerun_sample(slow, **kw)                                       # compile all lengths
    rerun, t_slow = timed(functools.partial(decoding.rerun_sample, slow, **kw))
    same = np.array_equal(stream, rerun) and np.array_equal(loop, rerun)
    print(f'{name}: stream {n / t_stream:8.1f} tok/s   on-device loop {n / t_loop:8.1f} tok/s   '
          f're-run {n / t_slow:8.1f} tok/s   speedup stream x{t_slow / t_stream:.1f}  '
          f'loop x{t_slow / t_loop:.1f}   same tokens: {same}')


if __name__ == '__main__':
  main()
