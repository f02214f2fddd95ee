"""How far a reversible stack's gradients drift from plain backprop: LSH against dense attention.

  python benchmarks/reversible_lsh_cpu.py                          # d 256, 4,096 tokens, 6 blocks
  python benchmarks/reversible_lsh_cpu.py --d_model 32 --length 256 --blocks 2   # smoke

The backward of `ReversibleSerial` rebuilds each block's inputs from its outputs, exact up to
rounding, and re-runs the block with the same rng: LSH draws the same rotations, but a
rebuilt query a rounding away from a hash boundary can land in another bucket, so that
token's gradient is taken through a slightly different attention. Dense attention has no
such boundary, so its drift is reconstruction rounding alone. Both stacks are
[attention half-residual, swap, feed-forward half-residual, swap] x blocks (causal, 4 heads;
LSH: 2 hashes, chunks of 64, length / 64 buckets), one batch of random inputs, one rng.

Prints, per kind and precision, the relative L2 difference of all gradients (weights and
inputs): reversible vs plain, and each against plain float32; for LSH also how many bucket
ids differ when hashed from the rebuilt inputs instead of the forward's. Precisions:
float32; bfloat16 everywhere, the residual stream included (as plait's bf16 models run);
bf16 inside each f with the residual stream kept in float32 (docs/reversible.md's advice).
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import plait.layers as tl
from plait.layers.attention import lsh_buckets

N_HEADS, CHUNK = 4, 64


def stack(kind, d_model, length, n_blocks, f_dtype=None):
  """The sublayers of `n_blocks` reversible blocks with `kind` ('lsh' or 'dense') attention;
  with `f_dtype`, each half's f first casts its input to it (the residual stream keeps its
  own dtype)."""
  cast = [] if f_dtype is None else [tl.Fn('Cast', lambda x: x.astype(f_dtype))]
  layers = []
  for _ in range(n_blocks):
    attention = (tl.LSHSelfAttention(d_model, n_heads=N_HEADS, n_hashes=2,
                                     n_buckets=max(2, length // CHUNK), chunk_len=CHUNK,
                                     causal=True)
                 if kind == 'lsh' else tl.CausalAttention(d_model, n_heads=N_HEADS))
    layers += [tl.ReversibleHalfResidual(*cast, tl.LayerNorm(), attention_layer=attention),
               tl.ReversibleSwap(),
               tl.ReversibleHalfResidual(*cast, tl.LayerNorm(), tl.Dense(2 * d_model),
                                         tl.Relu(), tl.Dense(d_model)),
               tl.ReversibleSwap()]
  return layers


def cast(tree, dtype):
  return jax.tree_util.tree_map(lambda a: a.astype(dtype), tree)


def gradients(layer, weights, state, x, dtype, rng, x_dtype=None):
  """Gradients (weights, inputs) of a loss mixing both outputs, weights cast to `dtype`, the
  inputs (the residual stream) to `x_dtype` (default `dtype`)."""
  def loss(w, x):
    y, _ = layer.pure_fn(cast(x, x_dtype or dtype), cast(w, dtype), state, rng)
    return sum(jnp.sum(jnp.sin(v.astype(jnp.float32)) * (i + 1.5)) for i, v in enumerate(y))
  return jax.jit(jax.grad(loss, argnums=(0, 1)))(weights, x)


def bucket_flips(layers, weights, state, x, dtype, x_dtype=None):
  """(bucket ids that differ, bucket ids) over the LSH layers of a reversible stack: each
  hashed from the input the forward gave it and from the one the backward rebuilds (the
  outputs run back through every layer's `reverse`; weights in `dtype`, the residual stream
  in `x_dtype`). The layers' rngs and the rotations hashed by are fixed draws of their own."""
  weights, inputs = cast(weights, dtype), [cast(x, x_dtype or dtype)]
  rngs = [jax.random.fold_in(jax.random.key(3), i) for i in range(len(layers))]
  for layer, w, s, rng in zip(layers, weights, state, rngs):
    inputs.append(layer.pure_fn(inputs[-1], w, s, rng)[0])
  rebuilt = [None] * len(layers)
  out = inputs[-1]
  for i in reversed(range(len(layers))):
    out = rebuilt[i] = layers[i].reverse(out, weights[i], state[i], (), rngs[i])
  differ = total = 0
  for layer, w, given, again in zip(layers, weights, inputs, rebuilt):
    if not isinstance(layer, tl.ReversibleHalfResidual):
      continue  # a swap
    f = layer.sublayers[0].sublayers
    if not isinstance(f[-1], tl.Attention):
      continue  # the feed-forward half
    (f_weights,) = w   # f = Serial([Cast], LayerNorm, attention) on x2
    def attention_input(x2):
      for sublayer, sublayer_w in zip(f[:-1], f_weights[:-1]):
        x2 = sublayer.pure_fn(x2, sublayer_w, (), None)[0]
      return x2
    ids = [lsh_buckets(f[-1], attention_input(xs[1]), f_weights[-1], jax.random.key(5))
           for xs in (given, again)]
    differ += int(jnp.sum(ids[0] != ids[1]))
    total += ids[0].size
  return differ, total


def relative(a, b):
  flat = lambda t: np.concatenate([np.asarray(v, np.float64).ravel()
                                   for v in jax.tree_util.tree_leaves(t)])
  a, b = flat(a), flat(b)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--d_model', type=int, default=256)
  p.add_argument('--length', type=int, default=4096)
  p.add_argument('--blocks', type=int, default=6)
  args = p.parse_args(argv)
  shape = (1, args.length, args.d_model)
  x = tuple(jax.random.normal(jax.random.key(seed), shape, jnp.float32) for seed in (10, 11))
  rng = jax.random.key(2)
  print(f'd_model {args.d_model}, {args.length} tokens, {args.blocks} blocks, '
        f'{jax.devices()[0].device_kind}', flush=True)
  # (name, f's cast, weights' dtype, residual stream's dtype); the f32 twin of a cast stack
  # (cast to float32: a no-op) has the same weights (Fn has none) and is its exact reference.
  variants = [('float32', None, jnp.float32, jnp.float32),
              ('bfloat16', None, jnp.bfloat16, jnp.bfloat16),
              ('bf16 f, f32 stream', jnp.bfloat16, jnp.bfloat16, jnp.float32)]
  for kind in ('dense', 'lsh'):
    for name, f_dtype, dtype, x_dtype in variants:
      layers = stack(kind, args.d_model, args.length, args.blocks, f_dtype)
      reversible, plain = tl.ReversibleSerial(layers), tl.Serial(layers)
      twin = tl.Serial(stack(kind, args.d_model, args.length, args.blocks,
                             None if f_dtype is None else jnp.float32))
      weights, state = reversible.init(x, rng=jax.random.key(1))
      start = time.perf_counter()
      exact = gradients(twin, weights, state, x, jnp.float32, rng)
      rev = gradients(reversible, weights, state, x, dtype, rng, x_dtype)
      ref = gradients(plain, weights, state, x, dtype, rng, x_dtype)
      flips = ''
      if kind == 'lsh':
        differ, total = bucket_flips(layers, weights, state, x, dtype, x_dtype)
        flips = f'; buckets of rebuilt inputs that differ: {differ} of {total}'
      print(f'{kind:5s} {name:18s}: reversible vs plain {relative(rev, ref):.2e}; '
            f'vs plain float32: plain {relative(ref, exact):.2e}, reversible '
            f'{relative(rev, exact):.2e}{flips} ({time.perf_counter() - start:.0f} s)',
            flush=True)


if __name__ == '__main__':
  main()
