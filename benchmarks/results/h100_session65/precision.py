"""The causal FAVOR+ layer's kernel path (bf16) against its XLA path at default precision
(float32 dots as TF32 on the GPU) and at 'highest', with the feature kernels' projection
dots as TF32 (as before section 49) and split (hi + lo bf16): which reference moved?
With --kernels, also mixed rows (against 'highest' only): the forward kernels in one mode
and the query's, the key's or both gradient kernels in the other, to find which kernel
makes split's gradients worse (section 49: dx 1.19e-2 against 6.3e-3).

  python benchmarks/results/h100_session65/precision.py 16384 [--kernels]
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


def gradient_dots(dots, which):
  """Re-registers the query's and/or key's VJP (which: 'query', 'key', 'both') so that its
  gradient kernel takes the projection as `dots` makes it, whatever the forward took."""
  def convert(proj, dtype):
    w = jnp.sum(proj.astype(jnp.float32), axis=0)   # hi + lo, or the float32 piece
    saved, ffk.PROJECTION_DOTS = ffk.PROJECTION_DOTS, dots
    try:
      return ffk._pieces(w, dtype)  # pylint: disable=protected-access
    finally:
      ffk.PROJECTION_DOTS = saved
  def query_bwd(static, residuals, g):
    x, proj, top = residuals
    dx, _ = ffk._query_bwd(static, (x, convert(proj, x.dtype), top), g)  # pylint: disable=protected-access
    return dx, jnp.zeros_like(proj)
  def keys_bwd(static, residuals, g):
    x, proj, valid, top = residuals
    return (ffk._keys_bwd(static, (x, convert(proj, x.dtype), valid, top), g)[0],  # pylint: disable=protected-access
            jnp.zeros_like(proj), jnp.zeros_like(valid), jnp.zeros_like(top))
  if which in ('query', 'both'):
    ffk._query.defvjp(ffk._query_fwd, query_bwd)  # pylint: disable=protected-access
  if which in ('key', 'both'):
    ffk._keys.defvjp(ffk._keys_fwd, keys_bwd)  # pylint: disable=protected-access


def restore():
  ffk._query.defvjp(ffk._query_fwd, ffk._query_bwd)  # pylint: disable=protected-access
  ffk._keys.defvjp(ffk._keys_fwd, ffk._keys_bwd)  # pylint: disable=protected-access


def mixed_rows(length, want):
  """Forward kernels in one mode, some gradient kernels in the other, against `want`."""
  for forward, grads, which in (('split', 'tf32', 'query'), ('split', 'tf32', 'key'),
                                ('split', 'tf32', 'both'), ('tf32', 'split', 'both')):
    ffk.PROJECTION_DOTS = forward
    gradient_dots(grads, which)
    try:
      got = outputs('pallas', length)
    finally:
      restore()
    errs = [rel(g, w) for g, w in zip(got, want)]
    print(json.dumps(dict(dots=f'{forward}, {which} gradient kernel(s) {grads}',
                          reference='highest', out=errs[0], dx=errs[1],
                          dweights_max=max(errs[2:]))), flush=True)


def main(length, kernels=False):
  default = ffk.PROJECTION_DOTS
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
  if kernels:
    mixed_rows(length, refs['highest'])
  ffk.PROJECTION_DOTS = default


if __name__ == '__main__':
  main(int(sys.argv[1]), '--kernels' in sys.argv[2:])
