"""Causal linear attention by chunked prefix sums, with a memory-lean custom VJP.

`causal_product(a, b, c)[t] = sum_{j <= t} (a_t . b_j) c_j` is causal FAVOR+ attention
with a = query features, b = key features and c = [values, 1] (the last column gives the
denominator). Written as a_t^T S_t with S_t = sum_{j <= t} b_j c_j^T, autodiff of a
plain cumsum would keep every S_t: an (L, m, d) tensor. Instead we work in chunks of
`chunk_size` rows: inside a chunk the output is the exact masked product
tril(a_c b_c^T) c_c plus a_c S for everything before the chunk, where the per-chunk sums
S come from one cumulative sum over chunks ((L / chunk_size, m, d), not (L, m, d)).

The backward pass is three more causal products, since the gradients have the same form:
  da_t = sum_{j <= t} (g_t . c_j) b_j         = causal_product(g, c, b)
  db_j = sum_{t >= j} (c_j . g_t) a_t         = the same on reversed sequences
  dc_j = sum_{t >= j} (b_j . a_t) g_t         = the same on reversed sequences
so forward and backward both work chunk-wise and never hold an (L, m, d) tensor. Because the
backward calls `causal_product` itself, higher derivatives work the same way.

  >>> out = causal_product(qf, kf, jnp.concatenate([v, ones], -1), chunk_size=128)
"""
import functools

import jax
import jax.numpy as jnp


def chunked_product(a, b, c, chunk_size, initial=None):
  """Chunked causal product with an optional starting sum; no custom gradient.

  All chunks at once, no sequential loop: each chunk's sum B_n = b_n^T c_n (da, dc), an
  exclusive cumulative sum over chunks gives the sum of everything before chunk n, and
  out_n = tril(a_n b_n^T) c_n + a_n (initial + sum_{k<n} B_k). The largest intermediates
  are (L / chunk_size, da, dc) and (L / chunk_size, chunk_size, chunk_size): never an
  (L, da, dc) tensor. (A lax.scan carrying one sum keeps even less, but its L / chunk_size
  sequential steps made causal FAVOR+ slower than cuDNN flash attention at 64k tokens on
  an H100; see benchmarks/RESULTS.md.)

  Args:
    a: (L, da); b: (L, da); c: (L, dc).
    chunk_size: rows per chunk (capped at L); L is zero-padded to a multiple of it.
    initial: (da, dc) sum of b_j c_j^T over earlier positions (decoding), or None (zeros).
  Returns:
    (out (L, dc), final sum (da, dc)).
  """
  length = a.shape[0]
  size = max(1, min(chunk_size, length))
  n_chunks = -(-length // size)
  pad = n_chunks * size - length
  dtype = jnp.result_type(a, b, c)
  to_chunks = lambda t: jnp.pad(t.astype(dtype), ((0, pad), (0, 0))).reshape(
      n_chunks, size, t.shape[-1])
  a_c, b_c, c_c = map(to_chunks, (a, b, c))
  lower = jnp.tril(jnp.ones((size, size), jnp.bool_))
  within = jnp.where(lower, jnp.einsum('nsa,nta->nst', a_c, b_c), jnp.zeros((), dtype))
  sums = jnp.einsum('nsa,nsc->nac', b_c, c_c)
  if initial is None:
    initial = jnp.zeros((a.shape[-1], c.shape[-1]), dtype)
  initial = initial.astype(dtype)
  before = initial + jnp.cumsum(sums, axis=0) - sums
  out = jnp.einsum('nst,ntc->nsc', within, c_c) + jnp.einsum('nsa,nac->nsc', a_c, before)
  return out.reshape(n_chunks * size, c.shape[-1])[:length], initial + jnp.sum(sums, axis=0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def causal_product(a, b, c, chunk_size=128):
  """out[t] = sum_{j <= t} (a[t] . b[j]) c[j]: (L, da), (L, da), (L, dc) -> (L, dc).

  Memory O(chunk_size^2 + da * dc) beyond inputs and outputs, forward and backward.
  """
  return chunked_product(a, b, c, chunk_size)[0]


def _causal_product_fwd(a, b, c, chunk_size):
  return chunked_product(a, b, c, chunk_size)[0], (a, b, c)


def _causal_product_bwd(chunk_size, residuals, g):
  a, b, c = residuals
  rev = lambda t: t[::-1]
  da = causal_product(g, c, b, chunk_size)
  db = rev(causal_product(rev(c), rev(g), rev(a), chunk_size))
  dc = rev(causal_product(rev(b), rev(a), rev(g), chunk_size))
  return da.astype(a.dtype), db.astype(b.dtype), dc.astype(c.dtype)


causal_product.defvjp(_causal_product_fwd, _causal_product_bwd)

__all__ = ['causal_product']
