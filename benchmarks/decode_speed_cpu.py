"""Cached (predict-mode) vs re-run decoding speed on CPU: 512 tokens, tiny LMs.

  python benchmarks/decode_speed_cpu.py [--tokens 512] [--models TransformerLM,ReformerLM]

Fast decoding feeds one token per jitted call and keeps KV/LSH caches in state; the
re-run reference runs the whole prefix (padded to a multiple of 64, so only a few lengths
are compiled) for every token. Compile time is excluded: each is run once to warm up
(with a short run for the re-run path covering every padded length it will use).
Prints tokens/s both ways and the ratio, and checks both give the same greedy tokens.
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
    kw = dict(batch_size=1, temperature=0.0, weights=weights)
    decoding.autoregressive_sample(predict, max_length=4, **kw)           # compile
    fast, t_fast = timed(lambda: decoding.autoregressive_sample(predict, max_length=n, **kw))
    decoding.rerun_sample(slow, max_length=n, **kw)                         # compile all lengths
    rerun, t_slow = timed(lambda: decoding.rerun_sample(slow, max_length=n, **kw))
    same = np.array_equal(fast, rerun)
    print(f'{name}: cached {n / t_fast:8.1f} tok/s   re-run {n / t_slow:8.1f} tok/s   '
          f'speedup x{t_slow / t_fast:.1f}   same tokens: {same}')


if __name__ == '__main__':
  main()
