"""LSH self-attention (Reformer, Kitaev et al. 2020) as an AttentionKind and a layer.

  >>> layer = LSHSelfAttention(d_model=256, n_heads=4, n_hashes=2, n_buckets=32,
  ...                          chunk_len=64, causal=True)
  >>> weights, state = layer.init(ShapeDtype((2, 4096, 256)))
  >>> y, state = layer.pure_fn(x, weights, state, rng=jax.random.key(step))
  >>> buckets = lsh_buckets(layer, x, weights, rng=jax.random.key(step))  # (B, H, R, L)

The per-head math is in chunked.py (train/eval) and decode.py (predict); the hash in
hashing.py; fused.py runs train/eval rounds on the fused GPU kernel (`implementation=`).
Choices made here:

Rotations (the random hash). Train mode draws fresh rotations from the layer rng every
call (the shared path hands each (batch, head) pair its own key, so rotations differ per
example and head); an rng is required. Eval and predict mode ignore the rng and use
fixed rotations drawn from `hash_seed` (the same for every pair), so they are
deterministic and agree with each other; the model never depends on particular
rotations because training keeps redrawing them.

No state in train/eval. The forward keeps nothing between calls (the layer state is `()`
outside predict mode), so a trained Reformer's checkpoint holds no array shaped by the batch
or the length and restores for any of them. A reversible layer replays the same rng, which
gives the same rotations (tested against plain backprop). Its rebuilt inputs differ from the
originals by rounding, which flips a hash at a near-tie (docs/reversible.md measures the
gradient drift); `chunked.lsh_attention(..., buckets=...)` replays given buckets exactly.
`lsh_buckets(layer, x, weights, rng)` gives the (B, H, n_hashes, L) bucket ids the forward
sorts by, for inspection.

Lengths. A length that is not a multiple of `chunk_len` is padded automatically (the
padding sorts after every real token, so results equal those of a longer input with a
padding mask); it never raises.

Subtle dependence of causal LSH. With one chunk the output at i depends only on tokens
<= i. With several chunks, which earlier tokens share i's chunk depends on i's slot in
the (bucket, position) sort, which LATER tokens in lower buckets shift. Attention
weights still never reach a later position, but the set of earlier positions seen can
change with later tokens (benchmarks/lsh_causal_leak.py measures whether a model can
exploit this). Predict mode is defined so that decoding is exactly causal; see
decode.py for what it equals.
"""
import jax
import jax.numpy as jnp

from plait.layers.attention import sparse_kernel
from plait.layers.attention.base import (Attention, AttentionKind, kernel_implementation,
                                          layer_queries, vmap_pairs)
from plait.layers.attention.lsh.chunked import lsh_attention, sort_rounds
from plait.layers.attention.lsh.fused import fused_rounds, kernel_block
from plait.layers.attention.lsh.config import LSHConfig
from plait.layers.attention.lsh.decode import cached_lsh_attention, init_cache
from plait.layers.attention.lsh.hashing import check_n_buckets, hash_buckets, random_rotations

IMPLEMENTATIONS = (None, 'auto', 'xla', 'pallas', 'interpret')


class LSHKind(AttentionKind):
  """Per-head Reformer LSH attention with shared QK (wrap with `Attention`).

  Args:
    n_hashes: hash rounds; more rounds approximate full attention better.
    n_buckets: int (1, or even) or a list of even factors whose product is the count.
    chunk_len: length of the chunks the sorted sequence is cut into; the input length is
      padded automatically to a multiple of it.
    n_chunks_before, n_chunks_after: neighbouring chunks each chunk also attends to.
    causal: a position never attends to later positions (needed for predict mode).
    hash_seed: seed of the fixed rotations used in eval and predict mode.
    chunks_per_block: memory knob of train/eval mode (results are the same up to float
      rounding). 'auto' (default): when all rounds' attention would hold more than
      config.AUTO_BLOCK_LOGITS logits, compute it in blocks of query chunks holding
      at most that many, one at a time (recomputed in the backward pass); an int: blocks
      of that many query chunks per round; None: all rounds at once. (XLA path only.)
    implementation: train/eval mode. None/'auto' runs the rounds on the fused Pallas
      kernel (fused.py) on GPU for bf16/fp16 inputs when chunk_len is a multiple of 16
      and 16 <= d_head <= 128 (widths other than 16, 32, 64, 128 zero-padded to the
      next), XLA otherwise; 'xla' forces XLA (portable, the oracle); 'pallas' forces the
      kernel and raises when it can't run; 'interpret' runs the kernel through the Pallas
      interpreter (any backend, slow: tests). Predict mode always uses XLA (decode.py).
    normalize_keys: True (default, the Reformer paper's and Trax's): each key is its query
      rescaled to unit RMS, so logits are q_i . q_j / |q_j| and a key carries only a
      direction; False: the queries themselves are the keys (logits q_i . q_j /
      sqrt(d_head), as LRA's Reformer), so a long key draws every query. Every path
      (XLA, kernel, decoding) honours it.
  """

  shared_qk = True
  # Buckets are per token and padding sorts after every bucket: the real tokens fill the same
  # chunks, in the same order, wherever the padding sat (positions matter only as order).
  compactable = True

  def __init__(self, n_hashes=1, n_buckets=64, chunk_len=64, n_chunks_before=1,
               n_chunks_after=0, causal=False, hash_seed=0, chunks_per_block='auto',
               implementation=None, normalize_keys=True):
    where = 'LSHKind'
    if not isinstance(normalize_keys, bool):
      raise ValueError(f'{where}: normalize_keys must be True or False, got '
                       f'{normalize_keys!r}.')
    if implementation not in IMPLEMENTATIONS:
      raise ValueError(f'{where}: implementation must be one of {IMPLEMENTATIONS}, got '
                       f'{implementation!r}.')
    self.implementation = implementation
    if not (chunks_per_block is None or chunks_per_block == 'auto' or (
        isinstance(chunks_per_block, int) and not isinstance(chunks_per_block, bool)
        and chunks_per_block >= 1)):
      raise ValueError(f"{where}: chunks_per_block must be None, 'auto' or an int >= 1, got "
                       f'{chunks_per_block!r}.')
    if not isinstance(n_hashes, int) or n_hashes < 1:
      raise ValueError(f'{where}: n_hashes must be an int >= 1, got {n_hashes!r}.')
    if not isinstance(chunk_len, int) or chunk_len < 1:
      raise ValueError(f'{where}: chunk_len must be an int >= 1, got {chunk_len!r}.')
    if n_chunks_before < 0 or n_chunks_after < 0:
      raise ValueError(f'{where}: n_chunks_before/after must be >= 0, got '
                       f'{n_chunks_before}, {n_chunks_after}.')
    self.config = LSHConfig(n_hashes=n_hashes, factors=check_n_buckets(n_buckets, where),
                            chunk_len=chunk_len, n_chunks_before=n_chunks_before,
                            n_chunks_after=n_chunks_after, causal=causal,
                            chunks_per_block=chunks_per_block, normalize_keys=normalize_keys)
    self.n_buckets, self.hash_seed = n_buckets, hash_seed
    self.name = f'LSH{n_hashes}x{self.config.n_buckets}'

  def init_state(self, batch_size, n_heads, length, d_head, dtype, mode):
    """The decoding cache in predict mode; no state in train/eval (module docstring)."""
    if mode == 'predict':
      return init_cache(length, d_head, dtype, self.config)
    return ()

  def check_length(self, length, mode):
    if mode == 'predict' and not self.config.causal:
      raise ValueError('LSHKind: predict mode (decoding) needs causal=True.')

  def rotations(self, rng, mode, d_head):
    """The hash rotations: from rng in train mode, from hash_seed otherwise."""
    if mode == 'train':
      if rng is None:
        raise ValueError(
            'LSHKind: train mode draws fresh hash rotations each step from the rng; '
            "pass rng=jax.random.key(...) to pure_fn, or use mode='eval' (fixed rotations).")
    else:
      rng = jax.random.key(self.hash_seed)
    return random_rotations(rng, d_head, self.config.n_hashes, self.config.factors)

  def attend_batched(self, q, k, v, mask, state, rng, mode):
    """(B, H, L, d_head) q and v (k unused: shared QK), mask (B, L) or None, rng (B, H)."""
    del k  # Shared QK: the keys are the queries (normalized unless normalize_keys=False).
    d_head, cfg = q.shape[-1], self.config
    if mode == 'predict':
      def decode(q1, _, v1, mask1, cache1, rng1, __):
        return cached_lsh_attention(q1, v1, mask1, cache1, self.rotations(rng1, mode, d_head),
                                    cfg)
      return vmap_pairs(decode, q, None, v, mask, state, per_pair=rng)
    impl = self.pick_implementation(q)
    if impl == 'xla':
      def one(q1, _, v1, mask1, state1, rng1, __):
        out, _ = lsh_attention(q1, v1, _valid(q1, mask1), self.rotations(rng1, mode, d_head),
                               cfg)
        return out, state1
      return vmap_pairs(one, q, None, v, mask, state, per_pair=rng)
    def sort(q1, _, v1, mask1, state1, rng1, __):
      del v1, state1
      return sort_rounds(q1, _valid(q1, mask1), self.rotations(rng1, mode, d_head), cfg)
    rounds = vmap_pairs(sort, q, None, v, mask, state, per_pair=rng)
    return fused_rounds(q, v, rounds, cfg, interpret=impl == 'interpret'), state

  def buckets(self, q, mask, rng, mode):
    """(B, H, n_hashes, L) int32 bucket ids of (B, H, L, d_head) queries, as the forward sorts
    them (padding: n_buckets); rng a (B, H) key array (train mode) or None."""
    def one(q1, _, __, mask1, state1, rng1, ___):
      return hash_buckets(q1, _valid(q1, mask1), self.rotations(rng1, mode, q1.shape[-1]),
                          self.config), state1
    return vmap_pairs(one, q, None, q, mask, (), per_pair=rng)[0]

  def pick_implementation(self, q):
    """'xla', 'pallas' or 'interpret' for these (B, H, L, d_head) queries (see the class)."""
    c, d_head = self.config.chunk_len, q.shape[-1]
    block = kernel_block(c)
    if self.implementation == 'xla':
      return 'xla'
    if self.implementation == 'interpret':
      if block is None:
        raise ValueError(f"{self.name}: implementation='interpret' runs the kernel, which needs "
                         f'chunk_len a multiple of 16; got chunk_len={c}.')
      return 'interpret'
    return kernel_implementation(
        self.name, self.implementation, q.dtype,
        block is not None and sparse_kernel.supported(block, d_head, q.dtype),
        f'chunk_len a multiple of 16, 16 <= d_head <= 128 and float inputs; got '
        f'chunk_len={c}, d_head={d_head}, dtype={q.dtype}')


def _valid(q, mask):
  return jnp.ones(q.shape[:1], jnp.bool_) if mask is None else mask


def LSHSelfAttention(d_model, n_heads=8, n_hashes=1, n_buckets=64, chunk_len=64,  # pylint: disable=invalid-name
                     n_chunks_before=1, n_chunks_after=0, causal=False, max_len=2048,
                     d_head=None, dropout=0.0, use_mask=False, head_chunk_size=None,
                     hash_seed=0, mode='train', chunks_per_block='auto',
                     implementation=None, normalize_keys=True, rotary=False):
  """Reformer LSH self-attention layer: (B, L, d_model) -> (B, L, d_model).

  See `LSHKind` for the hashing arguments and `Attention` for the rest
  (max_len: predict-mode cache length; chunks_per_block: the memory knob; implementation:
  XLA or the fused GPU kernel; normalize_keys: unit-RMS keys or the queries, see `LSHKind`).
  Weights have no key projection (shared QK).
  State: none in train/eval (`lsh_buckets` gives the bucket ids), the decoding cache in
  predict mode.
  """
  kind = LSHKind(n_hashes=n_hashes, n_buckets=n_buckets, chunk_len=chunk_len,
                 n_chunks_before=n_chunks_before, n_chunks_after=n_chunks_after,
                 causal=causal, hash_seed=hash_seed, chunks_per_block=chunks_per_block,
                 implementation=implementation, normalize_keys=normalize_keys)
  return Attention(kind, d_model, n_heads=n_heads, d_head=d_head, dropout=dropout,
                   use_mask=use_mask, head_chunk_size=head_chunk_size, max_len=max_len,
                   rotary=rotary, mode=mode, name='LSHSelfAttention')


def lsh_buckets(layer, x, weights, rng=None, mask=None):
  """The bucket ids an LSH attention layer sorts by, for inspection.

  Args:
    layer: an `LSHSelfAttention` (an `Attention` of `LSHKind`) in train or eval mode.
    x: (B, L, d_model) inputs; weights: the layer's weights.
    rng: the key given to `pure_fn` (train mode draws the rotations from it; eval mode uses
      the fixed `hash_seed` rotations and ignores it).
    mask: (B, L) bool, False = padding (gets bucket n_buckets), or None.
  Returns:
    (B, H, n_hashes, L) int32, the buckets of the forward `layer.pure_fn(x, ..., rng)`.

    >>> buckets = lsh_buckets(layer, x, weights, rng=jax.random.key(step))
  """
  if not isinstance(getattr(layer, 'kind', None), LSHKind):
    raise TypeError(f'lsh_buckets: expected an LSHSelfAttention layer, got {layer!r}.')
  if layer.mode == 'predict':
    raise ValueError('lsh_buckets: the layer is in predict mode (decoding sorts no buckets); '
                     "build it with mode='train' or 'eval'.")
  q, keys = layer_queries(layer, x, weights, rng)
  return layer.kind.buckets(q, None if mask is None else jnp.asarray(mask, jnp.bool_), keys,
                            layer.mode)


__all__ = ['LSHKind', 'LSHSelfAttention', 'lsh_buckets']
