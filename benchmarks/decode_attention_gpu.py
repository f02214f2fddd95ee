"""One decoding step's attention over a KV cache, several formulations, timed on the GPU.

  python benchmarks/decode_attention_gpu.py   # B=8, 12 heads x 64, cache 2048, bf16

Each variant attends one new query per (batch, head) to the first `pos` of `max_len`
cached keys, for 12 layers' caches in one jitted call (as a 12-layer decoder does), and
is checked against float32 `masked_attention` first. Times are medians per layer-call.
"""
import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench_rows import measured, save_rows  # pylint: disable=g-bad-import-order
from plait.layers.attention import decode_kernel, dense


def einsum_masked(q, k, v, pos):
  """plait's cached_attention math (B, H, L, d) cache, mask of the filled positions."""
  allowed = (jnp.arange(k.shape[-2]) < pos)[None, None, None, :]
  return dense.masked_attention(q, k, v, allowed)


def split_k(q, k, v, pos, splits=16):
  """Flash-decoding in XLA: partial softmax per key split, combined by their maxima."""
  b, h, length, d = k.shape
  ks = k.reshape(b, h, splits, length // splits, d)
  vs = v.reshape(b, h, splits, length // splits, d)
  logits = jnp.einsum('bhqd,bhskd->bhsqk', q, ks, preferred_element_type=jnp.float32)
  logits = logits / np.sqrt(d)
  key_pos = jnp.arange(length).reshape(splits, 1, length // splits)
  logits = jnp.where(key_pos < pos, logits, -1e30)
  m = jnp.max(logits, axis=-1, keepdims=True)
  p = jnp.exp(logits - m)
  part = jnp.einsum('bhsqk,bhskd->bhsqd', p.astype(v.dtype), vs,
                    preferred_element_type=jnp.float32)
  denom = jnp.sum(p, axis=-1, keepdims=True)
  scale = jnp.exp(m - jnp.max(m, axis=2, keepdims=True))
  return (jnp.sum(part * scale, 2) / jnp.sum(denom * scale, 2)).astype(q.dtype)


def jax_dpa(implementation):
  def attend(q, k, v, pos):
    t = lambda x: x.transpose(0, 2, 1, 3)
    lens = jnp.full((q.shape[0],), pos, jnp.int32)
    return t(jax.nn.dot_product_attention(t(q), t(k), t(v), key_value_seq_lengths=lens,
                                          implementation=implementation))
  return attend


def jax_dpa_blhd(implementation):
  """Cache kept as (B, L, H, d): no transposes of the cache."""
  def attend(q, k, v, pos):
    lens = jnp.full((q.shape[0],), pos, jnp.int32)
    return jax.nn.dot_product_attention(q, k, v, key_value_seq_lengths=lens,
                                        implementation=implementation)
  return attend


def plait_kernel(q, k, v, pos):
  """plait.layers.attention.decode_kernel: Pallas, reads only the filled blocks."""
  b, h, length, d = k.shape
  out = decode_kernel.decode_attention(q.reshape(b * h, d), k.reshape(b * h, length, d),
                                       v.reshape(b * h, length, d), pos)
  return out.reshape(q.shape)


VARIANTS = {
    'plait_pallas_kernel': (plait_kernel, 'bhld'),
    'einsum_masked (current)': (einsum_masked, 'bhld'),
    'split_k16': (split_k, 'bhld'),
    'dpa_xla_seqlens': (jax_dpa('xla'), 'bhld'),
    'dpa_cudnn_seqlens': (jax_dpa('cudnn'), 'bhld'),
    'dpa_cudnn_seqlens_blhd': (jax_dpa_blhd('cudnn'), 'blhd'),
}


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--batch', type=int, default=8)
  p.add_argument('--heads', type=int, default=12)
  p.add_argument('--max_len', type=int, default=2048)
  p.add_argument('--layers', type=int, default=12)
  p.add_argument('--positions', type=int, nargs='+', default=[256, 1024, 2048])
  p.add_argument('--reps', type=int, default=50)
  p.add_argument('--only', nargs='*', default=None)
  p.add_argument('--out', default=None)
  args = p.parse_args(argv)
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  b, h, length, d, n = args.batch, args.heads, args.max_len, 64, args.layers
  keys = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(keys[0], (n, b, h, 1, d), jnp.bfloat16)
  k = jax.random.normal(keys[1], (n, b, h, length, d), jnp.bfloat16)
  v = jax.random.normal(keys[2], (n, b, h, length, d), jnp.bfloat16)
  to_blhd = lambda x: x.transpose(0, 1, 3, 2, 4)
  rows = []
  for name, (fn, layout) in VARIANTS.items():
    if args.only and name not in args.only:
      continue
    for pos in args.positions:
      def fill(row, fn=fn, layout=layout, pos=pos):
        qq, kk, vv = (q, k, v) if layout == 'bhld' else (to_blhd(q), to_blhd(k), to_blhd(v))
        @jax.jit
        def run(qq, kk, vv, pos):
          return [fn(qq[i], kk[i], vv[i], pos) for i in range(n)]
        out = run(qq, kk, vv, pos)
        out = out[0] if layout == 'bhld' else out[0].transpose(0, 2, 1, 3)
        ref = einsum_masked(q[0].astype(jnp.float32), k[0].astype(jnp.float32),
                            v[0].astype(jnp.float32), pos)
        row['rel_err'] = float(jnp.linalg.norm(out.astype(jnp.float32) - ref)
                               / jnp.linalg.norm(ref))
        times = []
        for _ in range(args.reps):
          t = time.perf_counter()
          jax.block_until_ready(run(qq, kk, vv, pos))
          times.append(time.perf_counter() - t)
        row['us_per_layer'] = statistics.median(times) / n * 1e6
        row['cache_gb_s'] = 2 * b * h * pos * d * 2 / (row['us_per_layer'] * 1e-6) / 1e9
      rows.append(measured({'variant': name, 'pos': pos, 'batch': b}, fill))
  save_rows(rows, args.out)
  print('\n| variant | pos | µs/layer | cache GB/s | rel err |\n| --- | --- | --- | --- | --- |')
  for r in rows:
    print(f"| {r['variant']} | {r['pos']} | {r.get('us_per_layer', float('nan')):.1f} | "
          f"{r.get('cache_gb_s', float('nan')):.0f} | {r.get('rel_err', r.get('error'))} |")


if __name__ == '__main__':
  sys.exit(main())
