"""A reversible stack with a chunked feed-forward: training memory is flat with depth.

With `lax.map` + `jax.checkpoint` in `Chunk`, each half-block added ~3 activation-sized
buffers (CPU, d=32, L=4096: 2 -> 8 blocks went 5.1 -> 23.1 MiB); `chunked_map` keeps
them flat. Compile only (deterministic), CPU.
"""
import jax
import jax.numpy as jnp

import plait.layers as tl

D, LENGTH, CHUNK = 32, 4096, 512


def _chunked_ff_stack(n_blocks):
  halves = []
  for _ in range(2 * n_blocks):
    ff = tl.Serial(tl.LayerNorm(), tl.Dense(4 * D), tl.Relu(), tl.Dense(D))
    halves += [tl.ReversibleHalfResidual(tl.Chunk(ff, CHUNK)), tl.ReversibleSwap()]
  return tl.ReversibleSerial(halves)


def _grad_temp_bytes(layer):
  sig = (jax.ShapeDtypeStruct((LENGTH, D), jnp.float32),) * 2
  weights, state = jax.eval_shape(lambda: layer.init(sig))
  def loss(w, x):
    y, _ = layer.pure_fn(x, w, state, None)
    return jnp.sum(y[0] * y[1])
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(weights, sig).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def test_memory_flat_with_depth_for_chunked_feed_forward():
  # 2 blocks (4 halves) is past the shallow special cases (the last cotangents are the
  # outputs); from there on nothing may grow.
  two, eight = (_grad_temp_bytes(_chunked_ff_stack(n)) for n in (2, 8))
  activation = LENGTH * D * 4
  print(f'chunked FF blocks 2 -> 8: {two / 2**20:.2f} -> {eight / 2**20:.2f} MiB')
  assert eight <= 1.1 * two
  assert eight - two < activation
