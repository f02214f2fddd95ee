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

Prints, per kind and dtype (everything cast, the residual stream included, as a bf16 model
runs), the relative L2 difference of all gradients (weights and inputs): reversible vs plain
in that dtype, and each against plain float32.
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import plait.layers as tl

N_HEADS, CHUNK = 4, 64


def stack(kind, d_model, length, n_blocks):
  """The sublayers of `n_blocks` reversible blocks with `kind` ('lsh' or 'dense') attention."""
  layers = []
  for _ in range(n_blocks):
    attention = (tl.LSHSelfAttention(d_model, n_heads=N_HEADS, n_hashes=2,
                                     n_buckets=max(2, length // CHUNK), chunk_len=CHUNK,
                                     causal=True)
                 if kind == 'lsh' else tl.CausalAttention(d_model, n_heads=N_HEADS))
    layers += [tl.ReversibleHalfResidual(tl.LayerNorm(), attention_layer=attention),
               tl.ReversibleSwap(),
               tl.ReversibleHalfResidual(tl.LayerNorm(), tl.Dense(2 * d_model), tl.Relu(),
                                         tl.Dense(d_model)),
               tl.ReversibleSwap()]
  return layers


def gradients(layer, weights, state, x, dtype, rng):
  """Gradients (weights, inputs) of a loss mixing both outputs, computed in `dtype`."""
  cast = lambda tree: jax.tree_util.tree_map(lambda a: a.astype(dtype), tree)
  def loss(w, x):
    y, _ = layer.pure_fn(cast(x), cast(w), state, rng)
    return sum(jnp.sum(jnp.sin(v.astype(jnp.float32)) * (i + 1.5)) for i, v in enumerate(y))
  return jax.jit(jax.grad(loss, argnums=(0, 1)))(weights, x)


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
  for kind in ('dense', 'lsh'):
    layers = stack(kind, args.d_model, args.length, args.blocks)
    reversible, plain = tl.ReversibleSerial(layers), tl.Serial(layers)
    weights, state = reversible.init(x, rng=jax.random.key(1))
    exact = gradients(plain, weights, state, x, jnp.float32, rng)
    for dtype in (jnp.float32, jnp.bfloat16):
      start = time.perf_counter()
      rev = gradients(reversible, weights, state, x, dtype, rng)
      ref = exact if dtype == jnp.float32 else gradients(plain, weights, state, x, dtype, rng)
      print(f'{kind:5s} {jnp.dtype(dtype).name:8s}: reversible vs plain {relative(rev, ref):.2e}; '
            f'vs plain float32: plain {relative(ref, exact):.2e}, reversible '
            f'{relative(rev, exact):.2e} ({time.perf_counter() - start:.0f} s)', flush=True)


if __name__ == '__main__':
  main()
