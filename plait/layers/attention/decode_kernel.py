"""One decoding step of attention over a KV cache, as a Pallas (Triton) kernel for GPUs.

XLA turns the (1 query) x (cache) products of a decoding step into reduction kernels
that read the whole cache, filled or not, at a fraction of the memory bandwidth; at
batch 8 and a 2k cache they were half of a TransformerLM's per-token time. This kernel
splits each row's cache into blocks of `block_k` keys, one program per (row, block);
blocks past the filled length return at once, so a step reads only the filled part.
Each program writes its block's softmax partials (max, sum, weighted values), which are
combined outside the kernel (flash-decoding).

  >>> out = decode_attention(q, k_cache, v_cache, length)  # q (N, d), caches (N, L, d)

`interpret=True` runs the same kernel through the Pallas interpreter (CPU tests).
"""
import functools

import jax
import jax.numpy as jnp

from plait.layers.attention.base import large_negative
from plait.layers.attention.kernel_common import triton_params

__all__ = ['decode_attention', 'supported']

_NEG = large_negative(jnp.float32)  # Masked logits and the max of an empty block.


def block_size(cache_len, largest=128):
  """The largest power of two <= `largest` dividing cache_len, or None below 16."""
  block = largest
  while block >= 16:
    if cache_len % block == 0:
      return block
    block //= 2
  return None


def supported(q_shape, cache_len, dtype):
  """Whether `decode_attention` takes these shapes: one query, a power-of-two d_head <= 256."""
  d = q_shape[-1]
  return (q_shape[-2] == 1 and d in (16, 32, 64, 128, 256) and block_size(cache_len) is not None
          and dtype in (jnp.bfloat16, jnp.float16, jnp.float32))


@functools.partial(jax.jit, static_argnames=('block_k', 'interpret'))
def decode_attention(q, k, v, length, block_k=None, interpret=False):
  """softmax(q . k[:length] / sqrt(d)) . v[:length] for every row.

  Args:
    q: (N, d) queries. k, v: (N, L, d) caches (any float dtype), L a multiple of block_k.
    length: int scalar, the filled prefix of the caches (1 <= length <= L).
    block_k: keys per program (default `block_size(L)`).
  Returns:
    (N, d) in q's dtype; the softmax and its sums are float32.
  """
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  n, cache_len, d = k.shape
  if block_k is None:
    block_k = block_size(cache_len)
    if block_k is None:
      raise ValueError(f'decode_attention: cache length {cache_len} has no power-of-two '
                       'block of 16 to 128 keys dividing it; use a multiple of 16.')
  if block_k < 1 or cache_len % block_k:
    raise ValueError(f'decode_attention: cache length {cache_len} is not a multiple of '
                     f'block_k={block_k}.')
  blocks = cache_len // block_k
  kernel = functools.partial(_block_kernel, block_k=block_k, scale=d ** -0.5)
  params = triton_params(4, 2, interpret)
  row = lambda i, j: (i, j, 0)
  out, block_max, block_sum = pl.pallas_call(
      kernel, grid=(n, blocks),
      in_specs=[pl.BlockSpec((), lambda i, j: ()),
                pl.BlockSpec((None, d), lambda i, j: (i, 0)),
                pl.BlockSpec((None, block_k, d), row),
                pl.BlockSpec((None, block_k, d), row)],
      out_specs=[pl.BlockSpec((None, None, d), row), pl.BlockSpec((None, None, 1), row),
                 pl.BlockSpec((None, None, 1), row)],
      out_shape=[jax.ShapeDtypeStruct((n, blocks, d), jnp.float32),
                 jax.ShapeDtypeStruct((n, blocks, 1), jnp.float32),
                 jax.ShapeDtypeStruct((n, blocks, 1), jnp.float32)],
      compiler_params=params, interpret=interpret, name='plait_decode_attention',
  )(jnp.asarray(length, jnp.int32), q, k, v)
  # Combine the blocks' partial softmaxes by their maxima (empty blocks weigh 0).
  weight = jnp.exp(block_max - jnp.max(block_max, axis=1, keepdims=True))
  total = jnp.sum(weight * block_sum, axis=1)
  return (jnp.sum(weight * out, axis=1) / total).astype(q.dtype)


def _block_kernel(length_ref, q_ref, k_ref, v_ref, out_ref, max_ref, sum_ref, *, block_k,
                  scale):
  """One (row, block) program: its block's max logit, sum of exp, and exp-weighted values.

  Kept rank >= 1 throughout (Triton lowers no scalar stacks or stores).
  """
  from jax.experimental import pallas as pl  # pylint: disable=import-outside-toplevel
  first = pl.program_id(1) * block_k
  length = length_ref[()]

  @pl.when(first < length)
  def _():
    filled = (first + jnp.arange(block_k) < length)[:, None]               # (block_k, 1)
    q = q_ref[...].astype(jnp.float32)[None, :]                            # (1, d)
    logits = jnp.sum(k_ref[...].astype(jnp.float32) * q, axis=1, keepdims=True) * scale
    logits = jnp.where(filled, logits, _NEG)                               # (block_k, 1)
    block_max = jnp.max(logits, axis=0)                                    # (1,)
    p = jnp.exp(logits - block_max[None, :])
    v = jnp.where(filled, v_ref[...].astype(jnp.float32), 0.0)  # 0 * NaN is NaN.
    out_ref[...] = jnp.sum(p * v, axis=0)
    max_ref[...] = block_max
    sum_ref[...] = jnp.sum(p, axis=0)

  @pl.when(first >= length)
  def _():
    out_ref[...] = jnp.zeros(out_ref.shape, jnp.float32)
    max_ref[...] = jnp.full(max_ref.shape, _NEG, jnp.float32)
    sum_ref[...] = jnp.zeros(sum_ref.shape, jnp.float32)
