"""The causal FAVOR+ layer's kernel path (bf16) against its XLA path at default precision
(float32 dots as TF32 on the GPU) and at 'highest', with the feature kernels' projection
dots as TF32 (as before section 49) and split (hi + lo bf16): which reference moved?

  python benchmarks/results/h100_session65/precision.py 16384
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))
import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

from favor_causal_gpu import D_MODEL, M, N_HEADS, rel, vjp_all  # pylint: disable=g-import-not-at-top
import plait.layers as tl  # pylint: disable=g-import-not-at-top
from plait.layers.attention import favor_feature_kernel as ffk  # pylint: disable=g-import-not-at-top
from plait.shapes import ShapeDtype  # pylint: disable=g-import-not-at-top


def outputs(impl, length):
  layer = tl.CausalFavorAttention(D_MODEL, N_HEADS, nb_features=M, mode='eval',
                                  implementation=impl)
  sig = ShapeDtype((1, length, D_MODEL), jnp.bfloat16)
  weights, state = layer.init(sig, rng=jax.random.key(0))
  weights = jax.tree_util.tree_map(lambda w: w.astype(jnp.bfloat16), weights)
  x = jax.random.normal(jax.random.key(1), sig.shape, jnp.bfloat16)
  fn = lambda x, w: layer.pure_fn(x, w, state, rng=jax.random.key(2))[0]
  out, dx, dw = vjp_all(fn, x, weights)
  return [out, dx] + jax.tree_util.tree_leaves(dw)


def main(length):
  refs = {'default': outputs('xla', length)}
  with jax.default_matmul_precision('highest'):
    refs['highest'] = outputs('xla', length)
  for dots in ('tf32', 'split'):
    ffk.PROJECTION_DOTS = dots
    got = outputs('pallas', length)
    for name, want in refs.items():
      errs = [rel(g, w) for g, w in zip(got, want)]
      print(json.dumps(dict(dots=dots, reference=name, out=errs[0], dx=errs[1],
                            dweights_max=max(errs[2:]))), flush=True)
  errs = [rel(g, w) for g, w in zip(refs['default'], refs['highest'])]
  print(json.dumps(dict(dots='xla default', reference='highest', out=errs[0], dx=errs[1],
                        dweights_max=max(errs[2:]))), flush=True)


if __name__ == '__main__':
  main(int(sys.argv[1]))
