"""Bytes a causal FAVOR+ layer and a PerformerLM keep for the backward, maps recomputed or kept.

CPU, nothing run: `jax.eval_shape` of the training loss's vjp closure, on the causal kernel
path (`implementation='interpret'`, the same custom VJPs and residuals as on the GPU),
weights and activations in bf16. Usage: python residuals.py BATCH LENGTH (RESULTS 41: 8 8192).
"""
import sys

import jax
import jax.numpy as jnp

from plait import layers as tl
from plait import models
from plait.layers.base import walk_layers
from plait.shapes import ShapeDtype


def kept_bytes(layer, shape, dtype):
  """GiB in the vjp closure of sum(layer(x)) w.r.t. the (bf16) weights."""
  weights, state = jax.eval_shape(lambda: layer.init(ShapeDtype(shape, dtype),
                                                     rng=jax.random.key(0)))
  weights = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, jnp.bfloat16)
                         if jnp.issubdtype(a.dtype, jnp.floating) else a, weights)
  x = jax.ShapeDtypeStruct(shape, dtype)
  def loss(w, x):
    return jnp.sum(layer.pure_fn(x, w, state, rng=jax.random.key(1))[0].astype(jnp.float32))
  closure = jax.eval_shape(lambda w, x: jax.vjp(lambda w: loss(w, x), w)[1], weights, x)
  return sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(closure)) / 2**30


def on_kernels(model):
  for layer in walk_layers(model):
    if isinstance(getattr(layer, 'kind', None), tl.FavorKind):
      layer.kind.implementation = 'interpret'
  return model


if __name__ == '__main__':
  batch, length = int(sys.argv[1]), int(sys.argv[2])
  for recompute in (True, False):
    layer = on_kernels(tl.CausalFavorAttention(512, 8, nb_features=256, mode='train',
                                               recompute_features=recompute))
    lm = on_kernels(models.PerformerLM(vocab_size=320, d_model=512, d_ff=2048, n_layers=6,
                                       n_heads=8, max_len=length, dropout=0.0, mode='train',
                                       recompute_features=recompute))
    print(f'recompute_features={recompute}: attention layer '
          f'{kept_bytes(layer, (batch, length, 512), jnp.bfloat16):.2f} GiB, PerformerLM '
          f'{kept_bytes(lm, (batch, length), jnp.int32):.2f} GiB kept for the backward')
