"""chunked_map: a function over chunks, one at a time, with a recomputing backward pass.

  >>> ys, aux = chunked_map(fn, xs, params, consts)
  >>> # ys[i], aux[i] == fn(params, consts, xs[i], i)  for every chunk i

It replaces `jax.lax.map(jax.checkpoint(fn), xs)` where memory matters (the chunked
feed-forward, head chunking). Both keep one chunk's intermediates alive at a time; they
differ in the buffers around the loop:

- `lax.map` preallocates its stacked outputs from a constant, which XLA is free to
  schedule (on CPU: at the start of the program) or fuse with other such buffers, so
  in a deep reversible stack every layer's output buffers are alive at once. Here every
  stacked buffer is made from a zero that passes an optimization barrier together with
  the data it belongs to, so it cannot exist before that data does.
- Under `jax.checkpoint`, the linearized scan saves each chunk's inputs again, stacked
  (a copy of `xs`). Here the only residuals are `xs`, `params` and `consts` themselves;
  the backward loop recomputes each chunk's vjp and writes the input cotangents into one
  buffer, summing the `params` cotangents in float32 (then cast back).

fn(params, consts, x_i, i) -> (y_i, aux_i): `y` is differentiated, `aux` is not (states,
bucket ids). `params` (e.g. weights) is differentiated; `consts` (rng keys, states,
masks) is not. fn must get every array it uses through its arguments: a custom_vjp
cannot differentiate arrays a closure captures.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ['chunked_map']


def chunked_map(fn, xs, params=(), consts=()):
  """Stacks fn(params, consts, xs[i], i) over the leading axis of every leaf of `xs`.

  Returns (ys, aux), each leaf with a leading axis of n_chunks = len(xs leaves).
  Raises ValueError (naming the shapes) when the leaves of xs disagree on n_chunks.
  """
  leaves = jax.tree_util.tree_leaves(xs)
  if not leaves:
    raise ValueError('chunked_map: xs has no arrays to map over.')
  n = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
  if len(n) != 1 or None in n:
    raise ValueError('chunked_map: every leaf of xs needs the same leading (chunk) axis, '
                     f'got shapes {[tuple(np.shape(x)) for x in leaves]}.')
  return _chunked_map(fn, xs, params, consts)


def _is_float(x):
  return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def _take(tree, i):
  return jax.tree_util.tree_map(lambda x: x[i], tree)


def _put(bufs, values, i):
  return jax.tree_util.tree_map(
      lambda b, v: jax.lax.dynamic_update_index_in_dim(b, v.astype(b.dtype), i, 0),
      bufs, values)


def _zero_after(data):
  """(data, a float32 zero) through one barrier: the zero exists only once `data` does."""
  data, zero = jax.lax.optimization_barrier((data, jnp.zeros((), jnp.float32)))
  return data, zero


def _stacked_zeros(zero, n, shapes):
  """Zero buffers (n, *shape) for a pytree of ShapeDtypeStructs, built from `zero`."""
  return jax.tree_util.tree_map(
      lambda s: jnp.broadcast_to(zero.astype(s.dtype), (n,) + tuple(s.shape)), shapes)


def _loop(n, body, init):
  return jax.lax.fori_loop(0, n, body, init)


def _forward(fn, xs, params, consts):
  n = jax.tree_util.tree_leaves(xs)[0].shape[0]
  out_shapes = jax.eval_shape(lambda p, c, x: fn(p, c, x, 0), params, consts, _take(xs, 0))
  (xs, params, consts), zero = _zero_after((xs, params, consts))
  def body(i, bufs):
    return _put(bufs, fn(params, consts, _take(xs, i), i), i)
  return _loop(n, body, _stacked_zeros(zero, n, out_shapes))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _chunked_map(fn, xs, params, consts):
  return _forward(fn, xs, params, consts)


def _chunked_map_fwd(fn, xs, params, consts):
  return _forward(fn, xs, params, consts), (xs, params, consts)


def _float0_zeros(x):
  return np.zeros(np.shape(x), jax.dtypes.float0)


def _chunk_ct(ct, i):
  """Chunk i of a stacked output cotangent (float0 ones, of int outputs, just lose the axis)."""
  if ct.dtype == jax.dtypes.float0:
    return np.zeros(ct.shape[1:], jax.dtypes.float0)
  return ct[i]


def _chunked_map_bwd(fn, residuals, cts):
  xs, params, consts = residuals
  ys_ct, _ = cts   # aux gets no gradient.
  n = jax.tree_util.tree_leaves(xs)[0].shape[0]
  # The zeros (and the recomputation) wait for the cotangent: no early buffers.
  (xs, params, consts, ys_ct), zero = _zero_after((xs, params, consts, ys_ct))
  x_float = jax.tree_util.tree_map(_is_float, xs)
  p_float = jax.tree_util.tree_map(_is_float, params)
  pick = lambda tree, mask: [t for t, m in zip(jax.tree_util.tree_leaves(tree),
                                               jax.tree_util.tree_leaves(mask)) if m]
  x_leaves = pick(xs, x_float)
  p_leaves = pick(params, p_float)
  x_ct = [jnp.broadcast_to(zero.astype(x.dtype), x.shape) for x in x_leaves]
  p_ct = [jnp.broadcast_to(zero.astype(jnp.promote_types(p.dtype, jnp.float32)), p.shape)
          for p in p_leaves]

  def body(i, carry):
    x_ct, p_ct = carry
    x_i = _take(xs, i)
    def f(p_diff, x_diff):
      p = _merge(params, p_float, p_diff)
      x = _merge(x_i, x_float, x_diff)
      return fn(p, consts, x, i)
    _, vjp_fn, _ = jax.vjp(f, p_leaves, pick(x_i, x_float), has_aux=True)
    dp, dx = vjp_fn(jax.tree_util.tree_map(lambda c: _chunk_ct(c, i), ys_ct))
    x_ct = [jax.lax.dynamic_update_index_in_dim(b, d.astype(b.dtype), i, 0)
            for b, d in zip(x_ct, dx)]
    p_ct = [a + d.astype(a.dtype) for a, d in zip(p_ct, dp)]
    return x_ct, p_ct

  x_ct, p_ct = _loop(n, body, (x_ct, p_ct))
  p_ct = [g.astype(p.dtype) for g, p in zip(p_ct, p_leaves)]
  return (_fill(xs, x_float, x_ct), _fill(params, p_float, p_ct),
          jax.tree_util.tree_map(_float0_or_zero, consts))


def _merge(tree, mask, values):
  """`tree` with its masked leaves replaced, in order, by `values`."""
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  values = iter(values)
  merged = [next(values) if m else t for t, m in zip(leaves, jax.tree_util.tree_leaves(mask))]
  return jax.tree_util.tree_unflatten(treedef, merged)


def _fill(tree, mask, values):
  """Cotangents for `tree`: `values` at the masked (float) leaves, float0 zeros elsewhere."""
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  values = iter(values)
  cts = [next(values) if m else _float0_zeros(t)
         for t, m in zip(leaves, jax.tree_util.tree_leaves(mask))]
  return jax.tree_util.tree_unflatten(treedef, cts)


def _float0_or_zero(x):
  return jnp.zeros_like(x) if _is_float(x) else _float0_zeros(x)


_chunked_map.defvjp(_chunked_map_fwd, _chunked_map_bwd)
