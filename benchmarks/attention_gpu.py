"""Attention fwd+bwd time and memory vs length: our kinds vs cuDNN flash and XLA dense.

Every row is one `Attention` layer (same projections, 8 heads of 64, bf16, batch 1), so the
kinds differ only in the per-head algorithm; `flash-core` is the bare
`jax.nn.dot_product_attention(implementation='cudnn')` on (1, L, 8, 64) with no projections,
and `block_sparse-core` the bare fused block-sparse kernel (`sparse_kernel.py`) on the same
shapes. `block_sparse` is the XLA path of the block-sparse layer, `block_sparse_pallas` the
layer with the fused kernel; `cudnn_rotary` is the `cudnn` layer with rotary positions
(`rotary=True`: q and k rotated after the projections). `favor_keep` is the causal `favor`
layer with `recompute_features=False` (the backward reads the forward's feature maps instead
of recomputing them). `lsh` is the XLA path of the LSH layer (2 hashes, chunk 256, one
chunk back), `lsh_pallas` the layer on the fused kernel (lsh/fused.py), and `lsh-core`
the bare LSH kind on (1, 8, L, 64) q/v (hash, sort, kernel, combine; no projections).
`triton_flash-core` and `mosaic_flash-core` (not in the default kinds) are JAX's own dense
flash-attention kernels on flash-core's shapes, one per Pallas GPU backend (Triton; Mosaic
GPU, float16): how far each backend gets towards cuDNN on dense work, beside what plait's
block-sparse kernel (Triton) gets on its blocks.
Core rows and `lsh_pallas` also report `tflops` (and `b2b_tflops`, over the back-to-back
time): fwd+bwd FLOPs counted as 3.5x the forward's 4 * d per (query, key) pair computed
(all pairs of the computed blocks for the sparse kernel, summed over LSH's rounds; half the
square for causal flash), over the measured time (for `lsh_pallas` that time includes the
projections and the sort).
Time: median of jitted grad-of-sum wall times after warm-up, each call blocked on (so it
includes the host's dispatch and the sync round trip); `b2b_ms` ("back to back"): the
median time per call of calls dispatched back to back and blocked once, as a training loop
runs them (device time plus any gaps the host cannot hide). Memory: the compiled
executable's temp + argument + output bytes (`memory_analysis`), an upper-bound model of peak.

  python benchmarks/attention_gpu.py --lengths 1024 4096 65536 --out results.json
"""
import argparse
import functools
import math
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench_rows import measured, save_rows  # pylint: disable=g-bad-import-order
import plait.layers as tl
from plait.layers.attention import block_sparse, sparse_kernel
from plait.layers.attention.lsh import LSHKind
from plait.layers.attention.lsh.fused import banded_plan, kernel_block
from plait.shapes import ShapeDtype

D_HEAD, N_HEADS = 64, 8
D_MODEL = D_HEAD * N_HEADS


LSH_CHUNK, LSH_HASHES = 256, 2


def lsh_buckets(length):
  n_buckets = max(2, length // LSH_CHUNK)
  if n_buckets > 128:  # factorize large bucket counts (fewer rotation columns)
    a = 2 ** int(math.log2(n_buckets) // 2)
    n_buckets = [a, n_buckets // a]
  return n_buckets


def lsh(implementation, d_model=D_MODEL):
  return lambda causal, length: tl.LSHSelfAttention(
      d_model, N_HEADS, n_hashes=LSH_HASHES, n_buckets=lsh_buckets(length), chunk_len=LSH_CHUNK,
      n_chunks_before=1, causal=causal, mode='eval', head_chunk_size=head_chunk(length),
      implementation=implementation)


def lsh_flops(length):
  """fwd+bwd FLOPs of the kernel's computed blocks, all heads and rounds (see module doc)."""
  block = kernel_block(LSH_CHUNK)
  n_chunks = -(-length // LSH_CHUNK)
  plan = banded_plan(n_chunks, LSH_CHUNK // block, 1, 0)
  return 3.5 * 4 * D_HEAD * N_HEADS * LSH_HASHES * plan.computed_blocks * block ** 2


def lsh_core_step(causal, length):
  """The bare LSH kind on the kernel, fwd+bwd, on (1, 8, L, 64); returns (step, args, flops)."""
  kind = LSHKind(n_hashes=LSH_HASHES, n_buckets=lsh_buckets(length), chunk_len=LSH_CHUNK,
                 n_chunks_before=1, causal=causal, implementation='pallas')
  def loss(q, v):
    out, _ = kind.attend_batched(q, None, v, None, (), None, 'eval')
    return jnp.sum(out.astype(jnp.float32))
  keys = jax.random.split(jax.random.key(0), 2)
  args = [jax.random.normal(k, (1, N_HEADS, length, D_HEAD), jnp.bfloat16) for k in keys]
  return jax.jit(jax.grad(loss, argnums=(0, 1))), args, lsh_flops(length)


def head_chunk(length):
  """Heads processed together: all up to 64k tokens, fewer beyond (bounds scratch memory)."""
  return None if length <= 65536 else 2


def favor(chunk_size, implementation=None, recompute_features=True):
  return lambda causal, L: (tl.CausalFavorAttention(D_MODEL, N_HEADS, nb_features=256, mode='eval',
                                           chunk_size=chunk_size, head_chunk_size=head_chunk(L),
                                           implementation=implementation,
                                           recompute_features=recompute_features)
                            if causal else
                            tl.FavorAttention(D_MODEL, N_HEADS, nb_features=256, mode='eval',
                                     head_chunk_size=head_chunk(L),
                                     implementation=implementation))


MAKERS = {
    'cudnn': lambda causal, L: (tl.CausalAttention if causal else tl.SelfAttention)(
        D_MODEL, N_HEADS, implementation='cudnn', mode='eval'),
    'cudnn_rotary': lambda causal, L: (tl.CausalAttention if causal else tl.SelfAttention)(
        D_MODEL, N_HEADS, implementation='cudnn', rotary=True, mode='eval'),
    'xla': lambda causal, L: (tl.CausalAttention if causal else tl.SelfAttention)(
        D_MODEL, N_HEADS, implementation='xla', mode='eval'),
    'lsh': lsh('xla'),
    'lsh_pallas': lsh('pallas'),
    'favor': favor(128),  # Causal: the Pallas kernels on GPU (favor_kernel.py).
    'favor_xla': favor(128, 'xla'),
    'favor_keep': favor(128, recompute_features=False),  # Causal: keeps the feature maps.
    'favor_c512': favor(512),
    'favor_c2048': favor(2048),
    'block_sparse': lambda causal, L: block_sparse_layer(causal, L, 'xla'),
    'block_sparse_pallas': lambda causal, L: block_sparse_layer(causal, L, 'pallas'),
}
BLOCK, RAND_BLOCKS = 64, 3


def block_sparse_layer(causal, length, implementation, d_model=D_MODEL):
  return (tl.CausalBlockSparseAttention if causal else tl.BlockSparseAttention)(
      d_model, N_HEADS, block_size=BLOCK, num_rand_blocks=RAND_BLOCKS, mode='eval',
      head_chunk_size=head_chunk(length), implementation=implementation)


def block_sparse_core_step(causal, length):
  """The bare fused kernel, fwd+bwd, on (1, L, 8, 64) as the layer runs it (sequence-major,
  like flash-core's arrays); returns (step, args, flops)."""
  n_blocks = -(-length // BLOCK)
  plan = block_sparse.kernel_plan(n_blocks, RAND_BLOCKS, 0, causal)
  shape = (1, n_blocks * BLOCK, N_HEADS, D_HEAD)
  pos = jnp.arange(shape[1], dtype=jnp.int32)[None, None]
  heads_first = lambda t: t.transpose(0, 2, 1, 3)  # cancels against the kernels' own
  def loss(q, k, v):
    y = sparse_kernel.sparse_attention(heads_first(q), heads_first(k), heads_first(v), pos,
                                       pos, plan, causal=causal, sequence_major=True)
    return jnp.sum(y.astype(jnp.float32))
  keys = jax.random.split(jax.random.key(0), 3)
  args = [jax.random.normal(k, shape, jnp.bfloat16) for k in keys]
  flops = 3.5 * 4 * D_HEAD * N_HEADS * plan.computed_blocks * BLOCK ** 2
  return jax.jit(jax.grad(loss, argnums=(0, 1, 2))), args, flops


def dense_core_step(attend, causal, length, dtype=jnp.bfloat16):
  """fwd+bwd of `attend(q, k, v)` on random (1, L, 8, 64) `dtype` arrays; returns (step, args,
  flops), the flops of dense attention (half the square when causal)."""
  def loss(q, k, v):
    return jnp.sum(attend(q, k, v).astype(jnp.float32))
  keys = jax.random.split(jax.random.key(0), 3)
  args = [jax.random.normal(k, (1, length, N_HEADS, D_HEAD), dtype) for k in keys]
  flops = 3.5 * 4 * D_HEAD * N_HEADS * length ** 2 * (0.5 if causal else 1.0)
  return jax.jit(jax.grad(loss, argnums=(0, 1, 2))), args, flops


def flash_core_step(causal, length):
  return dense_core_step(functools.partial(jax.nn.dot_product_attention, is_causal=causal,
                                           implementation='cudnn'), causal, length)


# JAX's own dense flash-attention kernels, one per Pallas GPU backend, beside cuDNN.
def triton_flash_core_step(causal, length):
  """`pallas.ops.gpu.attention.mha` (Triton; 64-blocks in the backward; the Pallas
  interpreter on a CPU), bf16."""
  from jax.experimental.pallas.ops.gpu import attention  # pylint: disable=import-outside-toplevel
  blocks = attention.BlockSizes(block_q=128, block_k=64, block_q_dkv=64, block_kv_dkv=64,
                                block_q_dq=64, block_kv_dq=64)
  return dense_core_step(functools.partial(
      attention.mha, segment_ids=None, sm_scale=D_HEAD ** -0.5, causal=causal,
      block_sizes=blocks, interpret=jax.default_backend() == 'cpu'), causal, length)


def mosaic_flash_core_step(causal, length):
  """`pallas.ops.gpu.attention_mgpu` (Mosaic GPU), float16 (its shared-memory buffers' type);
  it has no causal backward, which is then the row's error."""
  from jax.experimental.pallas.ops.gpu import attention_mgpu  # pylint: disable=import-outside-toplevel
  config = attention_mgpu.TuningConfig(
      block_q=64, block_kv=128, max_concurrent_steps=2, causal=causal, block_q_dkv=64,
      block_kv_dkv=64, block_q_dq=64, block_kv_dq=64)
  return dense_core_step(functools.partial(attention_mgpu.attention, config=config), causal,
                         length, jnp.float16)


def layer_step(layer, length):
  sig = ShapeDtype((1, length, D_MODEL), jnp.bfloat16)
  weights, state = layer.init(sig, rng=jax.random.key(0))
  weights = jax.tree_util.tree_map(lambda w: w.astype(jnp.bfloat16), weights)
  x = jax.random.normal(jax.random.key(1), sig.shape, jnp.bfloat16)
  def loss(x, w):
    y, _ = layer.pure_fn(x, w, state, rng=jax.random.key(2))
    return jnp.sum(y.astype(jnp.float32))
  return jax.jit(jax.grad(loss, argnums=(0, 1))), [x, weights]


def measure(step, args, budget_s, compiled=None):
  """(median ms, GiB) of the jitted step at args; `compiled`: step already compiled there."""
  compiled = compiled or step.lower(*args).compile()
  mem = compiled.memory_analysis()
  total = mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
  jax.block_until_ready(compiled(*args))  # warm-up
  times, start = [], time.perf_counter()
  while len(times) < 3 or (time.perf_counter() - start < budget_s and len(times) < 20):
    t = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - t)
  return statistics.median(times) * 1e3, total / 2 ** 30


def back_to_back_ms(compiled, args, budget_s, sync_ms, repeats=3):
  """Median ms per call of a compiled step dispatched back to back (blocked once per
  repeat), as a training loop runs it: the host's dispatch and the sync round trip, which
  `measure` pays on every call, hide behind the device's work. sync_ms (`measure`'s time)
  sizes the repeats to about budget_s."""
  calls = max(3, min(50, int(budget_s / repeats / (sync_ms * 1e-3))))
  jax.block_until_ready(compiled(*args))
  per_call = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      out = compiled(*args)   # the previous output is freed once its step has run
    jax.block_until_ready(out)
    per_call.append((time.perf_counter() - start) / calls)
  return statistics.median(per_call) * 1e3


CORES = {'flash-core': flash_core_step, 'block_sparse-core': block_sparse_core_step,
         'lsh-core': lsh_core_step, 'triton_flash-core': triton_flash_core_step,
         'mosaic_flash-core': mosaic_flash_core_step}
LAYER_FLOPS = {'lsh_pallas': lsh_flops}


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--lengths', type=int, nargs='+', default=[1024, 4096, 16384, 65536, 262144,
                                                             1048576])
  p.add_argument('--kinds', nargs='+', default=['flash-core', 'cudnn', 'xla', 'lsh', 'lsh_pallas',
                                                 'lsh-core', 'favor', 'block_sparse',
                                                 'block_sparse_pallas', 'block_sparse-core'])
  p.add_argument('--causal', nargs='+', default=['causal', 'bidirectional'])
  p.add_argument('--budget_s', type=float, default=2.0)
  p.add_argument('--out', default=None)
  args = p.parse_args(argv)
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  rows = []
  for direction in args.causal:
    causal = direction == 'causal'
    for length in args.lengths:
      for kind in args.kinds:
        def fill(row, kind=kind, causal=causal, length=length):
          flops = None
          if kind in CORES:
            step, xs, flops = CORES[kind](causal, length)
          else:
            step, xs = layer_step(MAKERS[kind](causal, length), length)
            flops = LAYER_FLOPS[kind](length) if kind in LAYER_FLOPS else None
          compiled = step.lower(*xs).compile()
          row['ms'], row['gib'] = measure(step, xs, args.budget_s, compiled)
          row['b2b_ms'] = back_to_back_ms(compiled, xs, args.budget_s, row['ms'])
          if flops:
            row['tflops'] = flops / (row['ms'] * 1e-3) / 1e12
            row['b2b_tflops'] = flops / (row['b2b_ms'] * 1e-3) / 1e12
        rows.append(measured(dict(kind=kind, direction=direction, length=length), fill))
        save_rows(rows, args.out)
  print_table(rows)


def print_table(rows):
  cudnn = {(r['direction'], r['length']): r for r in rows if r['kind'] == 'cudnn'}
  print('\n| direction | length | kind | fwd+bwd ms | × cuDNN layer | memory GiB | TFLOP/s | '
        'back to back ms | × cuDNN | TFLOP/s back to back |')
  print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for r in rows:
    base = cudnn.get((r['direction'], r['length']), {})
    cell = f"{r['ms']:.2f}" if r.get('ms') else r.get('error', '-')[:60]
    print(f"| {r['direction']} | {r['length']} | {r['kind']} | {cell} | "
          f"{_ratio(r, base, 'ms')} | {_value(r, 'gib', '.2f')} | {_value(r, 'tflops', '.0f')} | "
          f"{_value(r, 'b2b_ms', '.2f')} | {_ratio(r, base, 'b2b_ms')} | "
          f"{_value(r, 'b2b_tflops', '.0f')} |")


def _value(row, key, spec):
  """A table cell: row[key] formatted, '-' when the row has none."""
  return format(row[key], spec) if key in row else '-'


def _ratio(row, base, key):
  """row[key] / base[key] (the cuDNN row of the same direction and length), or '-'."""
  return f'{row[key] / base[key]:.2f}' if row.get(key) and base.get(key) else '-'


if __name__ == '__main__':
  sys.exit(main())
