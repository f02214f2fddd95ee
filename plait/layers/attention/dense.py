"""Dense (full softmax) attention and chunked local attention, as AttentionKinds.

`DotProductKind` computes exact softmax attention on whole (B, H, L, d_head) tensors
with `jax.nn.dot_product_attention` (cuDNN flash attention on GPU for bf16/fp16, XLA
elsewhere). `ChunkedKind` splits the sequence into chunks of `chunk_len` and lets
each chunk attend to itself and `n_chunks_before` / `n_chunks_after` neighbours, so memory
is O(L * chunk_len) rather than O(L^2). In predict mode both keep a KV cache of `max_len`
positions in state and accept a whole prompt, then one token per call.

  >>> layer = CausalAttention(d_model=512, n_heads=8)          # a plait Layer
  >>> layer = ChunkedCausalAttention(512, 8, chunk_len=128, n_chunks_before=1)

Both kinds implement `attend_batched` on whole (B, H, L, d_head) arrays (their math works
on any leading axes); `attend` on one pair is the base class's (1, 1) batch.
"""
import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.attention import decode_kernel
from plait.layers.attention.base import Attention, AttentionKind, large_negative, on_gpu

IMPLEMENTATIONS = (None, 'auto', 'xla', 'cudnn')


# ----- shared math -----
def masked_attention(q, k, v, allowed):
  """Softmax attention with a boolean (..., Lq, Lk) mask; logits and softmax in >= float32.

  A query row with no allowed key outputs 0 (the family's convention, see base.py).
  """
  logits_dtype = jnp.promote_types(q.dtype, jnp.float32)  # float64 stays exact.
  logits = jnp.einsum('...qd,...kd->...qk', q, k, preferred_element_type=logits_dtype)
  logits = logits / np.sqrt(q.shape[-1])
  logits = jnp.where(allowed, logits, large_negative(logits_dtype))
  probs = jax.nn.softmax(logits, axis=-1)
  probs = jnp.where(jnp.any(allowed, axis=-1, keepdims=True), probs, 0.0)
  return jnp.einsum('...qk,...kd->...qd', probs.astype(v.dtype), v)


# ----- the predict-mode KV cache (shared by dense and chunked) -----
def init_kv_cache(max_len, d_head, dtype):
  """One pair's cache: (keys (max_len, d), values (max_len, d), key_valid (max_len,), next_pos)."""
  return (jnp.zeros((max_len, d_head), dtype), jnp.zeros((max_len, d_head), dtype),
          jnp.zeros((max_len,), jnp.bool_), jnp.zeros((), jnp.int32))


def cached_attention(q, k, v, mask, cache, allowed_fn, kernel=None):
  """Appends the new k/v to the cache and attends q to the cached positions allowed.

  Works on any leading axes (one pair, or (B, H) at once).
  Args:
    q, k, v: (..., L_new, d_head), the newest L_new positions.
    mask: bool, broadcastable to (..., L_new) (True = real token), or None.
    cache: as from `init_kv_cache`, with the same leading axes as q.
    allowed_fn: (q_positions (L_new, 1), k_positions (1, max_len)) -> bool (L_new, max_len).
    kernel: None, or 'pallas' / 'interpret' to attend with `decode_kernel` (GPU / its
      CPU interpreter), which reads only the filled cache. Only for one new position,
      no mask, and an allowed_fn that lets every filled position through (causal).
  Returns:
    (out (..., L_new, d_head), new_cache). Writing past the cache's end raises when the
    position is concrete (eager calls); under jit it yields NaN outputs, loud rather than
    silently overwriting the last slots.
  """
  k_cache, v_cache, valid, index = cache
  n_new, max_len = q.shape[-2], k_cache.shape[-2]
  start = jnp.ravel(index)[0]  # Every pair is at the same position.
  _check_cache_room(start, n_new, max_len)
  lead = (0,) * (q.ndim - 2)
  new_valid = jnp.ones(q.shape[:-1], jnp.bool_)
  if mask is not None:
    new_valid = jnp.broadcast_to(mask, q.shape[:-1])
  # The caches take the dtype of what they store: a state made by a float32 init and then
  # run with bf16 weights holds bf16 caches from the first call on (half the bytes to read
  # per token); the first call casts once.
  k_cache = jax.lax.dynamic_update_slice(k_cache.astype(k.dtype), k, lead + (start, 0))
  v_cache = jax.lax.dynamic_update_slice(v_cache.astype(v.dtype), v, lead + (start, 0))
  valid = jax.lax.dynamic_update_slice(valid, new_valid, lead + (start,))
  if kernel is not None:
    if n_new != 1 or mask is not None:
      raise ValueError(f'cached_attention: kernel={kernel!r} takes one new position and no '
                       f'mask, got {n_new} positions and mask={mask is not None}.')
    # The kernel reads the caches in their own dtype (a cast here would copy all of them).
    flat = lambda t: t.reshape((-1,) + t.shape[-2:])
    out = decode_kernel.decode_attention(
        flat(q)[:, 0], flat(k_cache), flat(v_cache), start + 1,
        interpret=kernel == 'interpret').reshape(q.shape)
  else:
    q_pos = (start + jnp.arange(n_new))[:, None]
    k_pos = jnp.arange(max_len)[None, :]
    allowed = allowed_fn(q_pos, k_pos) & (k_pos < start + n_new) & valid[..., None, :]
    out = masked_attention(q, k_cache.astype(q.dtype), v_cache.astype(q.dtype), allowed)
  out = jnp.where(start + n_new <= max_len, out, jnp.nan)
  return out, (k_cache, v_cache, valid, index + n_new)


def _check_cache_room(start, n_new, max_len):
  try:
    start = int(start)
  except (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError):
    return  # Traced: the NaN guard in cached_attention is all we can do.
  if start + n_new > max_len:
    raise ValueError(f'KV cache is full: {start} positions cached + {n_new} new > '
                     f'max_len={max_len}; build the layer with a larger max_len.')


# ----- dense -----
class DotProductKind(AttentionKind):
  """Exact softmax attention (an AttentionKind; wrap with `Attention` or use the constructors).

  Args:
    causal: each position sees only itself and earlier positions.
    implementation: None/'auto' picks cuDNN flash attention on GPU for bf16/fp16 inputs
      whose shapes it supports, XLA otherwise. 'xla' forces XLA; 'cudnn' forces cuDNN
      and raises (never falls back) when it can't be used. With a padding mask, cuDNN
      gets it as a (B, 1, L, L) bias, so its memory is then quadratic in L. float64
      inputs always take plait's own einsum path (jax computes the softmax in float32).
  """

  compactable = True   # softmax over the real keys: positions play no part

  def __init__(self, causal=False, implementation=None):
    if implementation not in IMPLEMENTATIONS:
      raise ValueError(f'DotProductKind: implementation must be one of {IMPLEMENTATIONS}, '
                       f'got {implementation!r}.')
    self.causal, self.implementation = causal, implementation
    self.name = 'Causal' if causal else 'DotProduct'

  def init_state(self, batch_size, n_heads, length, d_head, dtype, mode):
    return init_kv_cache(length, d_head, dtype) if mode == 'predict' else ()

  def attend_batched(self, q, k, v, mask, state, rng, mode):
    """(B, H, L, d_head) arrays, mask (B, Lk) or None; rng unused (no randomness)."""
    del rng
    if mode == 'predict':
      mask = None if mask is None else mask[:, None, :]
      causal = self.causal
      return cached_attention(q, k, v, mask, state,
                              lambda qp, kp: (kp <= qp) if causal else (kp >= 0),
                              self.pick_decode_kernel(q, mask, state))
    impl = self.pick_implementation(q, mask)
    if q.dtype == jnp.float64:
      # jax.nn.dot_product_attention takes its softmax in float32 whatever the input dtype;
      # float64 (gradient checks, numerics studies) goes through our einsum path instead.
      return masked_attention(q, k, v, _dense_allowed(mask, q.shape[-2], k.shape[-2],
                                                      self.causal)), state
    to_blhd = lambda t: t.transpose(0, 2, 1, 3)  # jax wants (B, L, H, d_head).
    full_mask = None if mask is None else mask[:, None, None, :]
    if full_mask is not None and impl == 'cudnn':
      full_mask = jnp.broadcast_to(full_mask, (q.shape[0], 1, q.shape[2], k.shape[2]))
    out = to_blhd(jax.nn.dot_product_attention(
        to_blhd(q), to_blhd(k), to_blhd(v), mask=full_mask, is_causal=self.causal,
        implementation=impl))
    if mask is not None:  # Zero the rows that see no valid key (jax averages all values).
      sees = jnp.cumsum(mask, axis=-1) > 0 if self.causal else jnp.any(mask, -1, keepdims=True)
      out = jnp.where(sees[:, None, :, None], out, jnp.zeros((), out.dtype))
    return out, state

  def pick_decode_kernel(self, q, mask, cache):
    """'pallas' (decode_kernel) for a one-token step on GPU without a mask, else None.

    implementation='xla' keeps XLA's path; so do CPUs and shapes the kernel lacks.
    """
    if self.implementation == 'xla' or mask is not None or not on_gpu():
      return None
    ok = decode_kernel.supported(q.shape, cache[0].shape[-2], q.dtype)
    return 'pallas' if ok else None

  def pick_implementation(self, q, mask):
    """'xla' or 'cudnn' for these (B, H, L, d_head) queries (see the class docstring)."""
    if self.implementation == 'xla':
      return 'xla'
    gpu = on_gpu()
    half = q.dtype in (jnp.bfloat16, jnp.float16)
    if self.implementation == 'cudnn':
      if not gpu:
        raise ValueError("DotProductKind: implementation='cudnn' needs a GPU, but JAX's "
                         f"backend is {jax.default_backend()!r}; use implementation=None "
                         "(auto) or 'xla'.")
      if not half:
        raise ValueError("DotProductKind: implementation='cudnn' takes bfloat16 or "
                         f'float16 inputs, got {q.dtype}; compute in bf16 or use '
                         'implementation=None (auto) or \'xla\'.')
      return 'cudnn'
    d_head, length = q.shape[-1], q.shape[-2]
    # cuDNN flash limits: d_head a multiple of 8 and <= 128 (256 on Hopper; we stay safe);
    # with a mask (a bias to cuDNN) the training kernels need an even length.
    cudnn_ok = (gpu and half and d_head % 8 == 0 and d_head <= 128
                and (mask is None or length % 2 == 0))
    return 'cudnn' if cudnn_ok else 'xla'


def _dense_allowed(mask, lq, lk, causal):
  """(B | 1, 1, Lq, Lk) bool: the padding mask (B, Lk) and/or the causal triangle."""
  allowed = jnp.ones((1, 1, lq, lk), jnp.bool_)
  if causal:
    allowed = allowed & (jnp.arange(lk)[None, :] <= jnp.arange(lq)[:, None])
  if mask is not None:
    allowed = allowed & mask[:, None, None, :]
  return allowed


# ----- chunked -----
class ChunkedKind(AttentionKind):
  """Local attention: chunk i attends to chunks i - n_chunks_before .. i + n_chunks_after.

  The length is padded to a multiple of `chunk_len` (padding keys are masked and padded
  queries dropped). Each chunk builds a (chunk_len, window * chunk_len) logit block,
  window = n_chunks_before + 1 + n_chunks_after (capped by the number of chunks), so
  memory grows linearly in length. With `causal`, positions also never see later
  positions (n_chunks_after must then be 0). Equals dense attention under the banded
  mask `allowed(q_pos, k_pos)`; with n_chunks_before >= number of chunks it is full
  (causal) attention. Predict mode keeps a full `max_len` KV cache (causal only).
  """

  def __init__(self, chunk_len, n_chunks_before=1, n_chunks_after=0, causal=True):
    if chunk_len < 1 or n_chunks_before < 0 or n_chunks_after < 0:
      raise ValueError(f'ChunkedKind: need chunk_len >= 1 and n_chunks_before/after >= 0, '
                       f'got {chunk_len}, {n_chunks_before}, {n_chunks_after}.')
    if causal and n_chunks_after:
      raise ValueError('ChunkedKind: causal attention cannot look at later chunks; '
                       f'set n_chunks_after=0 (got {n_chunks_after}).')
    self.chunk_len, self.causal = chunk_len, causal
    self.n_chunks_before, self.n_chunks_after = n_chunks_before, n_chunks_after
    self.name = f'Chunked{chunk_len}'

  def init_state(self, batch_size, n_heads, length, d_head, dtype, mode):
    return init_kv_cache(length, d_head, dtype) if mode == 'predict' else ()

  def check_length(self, length, mode):
    del length
    if mode == 'predict' and not self.causal:
      raise ValueError('ChunkedKind: predict mode (decoding) needs causal=True.')

  def allowed(self, q_pos, k_pos):
    """Whether query position q_pos may see key position k_pos (broadcasting ints)."""
    q_chunk, k_chunk = q_pos // self.chunk_len, k_pos // self.chunk_len
    ok = (k_chunk >= q_chunk - self.n_chunks_before) & (k_chunk <= q_chunk + self.n_chunks_after)
    if self.causal:
      ok = ok & (k_pos <= q_pos)
    return ok & (k_pos >= 0)

  def attend_batched(self, q, k, v, mask, state, rng, mode):
    """(B, H, L, d_head) arrays, mask (B, L) or None; rng unused."""
    del rng
    if mode == 'predict':
      mask = None if mask is None else mask[:, None, :]
      return cached_attention(q, k, v, mask, state, self.allowed)
    length, c = q.shape[-2], self.chunk_len
    n = -(-length // c)
    pad = n * c - length
    valid = jnp.ones(q.shape[:1] + (1, length), jnp.bool_) if mask is None else mask[:, None]
    pad_len = lambda t, axis: jnp.pad(t, [(0, pad if a == axis else 0) for a in range(t.ndim)])
    q, k, v = (pad_len(t, 2) for t in (q, k, v))
    valid = pad_len(valid, 2)
    to_chunks = lambda t: t.reshape(t.shape[:2] + (n, c) + t.shape[3:])  # (B, H, n, c, ...)
    shifts = np.arange(-min(self.n_chunks_before, n - 1), min(self.n_chunks_after, n - 1) + 1)
    k_w, v_w, valid_w = (_look_around(to_chunks(t), shifts) for t in (k, v, valid))
    # Key positions from each window slot's intended chunk; slots past either end are
    # rejected here (jnp.roll wrapped real data into them). Built with jnp from iotas, not
    # numpy: a numpy (n, c, W * c) mask would be baked into the program as a constant
    # (3 x 128 MiB at 2^19 tokens, minutes of compilation).
    k_chunk = jnp.arange(n)[:, None] + jnp.asarray(shifts)[None, :]     # (n, W)
    k_pos = (k_chunk[:, :, None] * c + jnp.arange(c)).reshape(n, -1)    # (n, W * c)
    in_range = jnp.repeat((k_chunk >= 0) & (k_chunk < n), c, axis=1)   # (n, W * c)
    q_pos = jnp.arange(n * c).reshape(n, c)
    allowed = (self.allowed(q_pos[:, :, None], k_pos[:, None, :]) & in_range[:, None, :]
               & valid_w[..., None, :])                                  # (B, 1|H, n, c, W*c)
    out = masked_attention(to_chunks(q), k_w, v_w, allowed)             # (B, H, n, c, d)
    out = out.reshape(out.shape[:2] + (n * c,) + out.shape[4:])[:, :, :length]
    return out, state


def _look_around(t, shifts):
  """(B, H, n, c, ...) -> (B, H, n, W * c, ...): each chunk followed by its neighbours.

  Slot j of chunk i holds chunk i + shifts[j], wrapping around at the ends.
  """
  t = jnp.stack([jnp.roll(t, -int(s), axis=2) for s in shifts], axis=3)  # (B, H, n, W, c, ...)
  return t.reshape(t.shape[:3] + (t.shape[3] * t.shape[4],) + t.shape[5:])


# ----- layers -----
def SelfAttention(d_model, n_heads=8, d_head=None, dropout=0.0, use_mask=False,  # pylint: disable=invalid-name
                  head_chunk_size=None, max_len=2048, implementation=None, use_bias=True,
                  mode='train', rotary=False):
  """Bidirectional dense multi-head attention: (B, L, d_model) -> (B, L, d_model).

  `implementation`: None (auto: cuDNN on GPU for bf16/fp16, else XLA), 'xla' or 'cudnn'
  (raises rather than falls back where cuDNN can't run); see `DotProductKind`.
  The other arguments are `Attention`'s.

    >>> layer = SelfAttention(d_model=256, n_heads=4, use_mask=True, mode='eval')
    >>> weights, state = layer.init((ShapeDtype((2, 128, 256)), ShapeDtype((2, 128), bool)))
    >>> (y, mask), state = layer.pure_fn((x, mask), weights, state)
  """
  return Attention(DotProductKind(causal=False, implementation=implementation), d_model,
                   n_heads=n_heads, d_head=d_head, dropout=dropout, use_mask=use_mask,
                   head_chunk_size=head_chunk_size, max_len=max_len, use_bias=use_bias,
                   rotary=rotary, mode=mode, name='SelfAttention')


def CausalAttention(d_model, n_heads=8, d_head=None, dropout=0.0, use_mask=False,  # pylint: disable=invalid-name
                    head_chunk_size=None, max_len=2048, implementation=None, use_bias=True,
                    mode='train', rotary=False):
  """Causal dense multi-head attention (a decoder's); predict mode keeps a KV cache.

  Arguments as `SelfAttention`. In predict mode call it with the prompt, then one token
  per call; the outputs equal eval mode on the whole sequence.

    >>> layer = CausalAttention(256, n_heads=4, max_len=512, mode='predict')
    >>> weights, cache = layer.init(ShapeDtype((2, 1, 256)))   # or eval-mode weights
    >>> y, cache = layer.pure_fn(prompt, weights, cache)         # (2, L_prompt, 256)
    >>> y, cache = layer.pure_fn(next_token, weights, cache)     # (2, 1, 256)
  """
  return Attention(DotProductKind(causal=True, implementation=implementation), d_model,
                   n_heads=n_heads, d_head=d_head, dropout=dropout, use_mask=use_mask,
                   head_chunk_size=head_chunk_size, max_len=max_len, use_bias=use_bias,
                   rotary=rotary, mode=mode, name='CausalAttention')


def ChunkedCausalAttention(d_model, n_heads=8, chunk_len=128, n_chunks_before=1, d_head=None,  # pylint: disable=invalid-name
                           dropout=0.0, use_mask=False, head_chunk_size=None, max_len=2048,
                           use_bias=True, mode='train', rotary=False):
  """Causal local attention: each chunk sees itself and `n_chunks_before` earlier chunks."""
  kind = ChunkedKind(chunk_len, n_chunks_before=n_chunks_before, causal=True)
  return Attention(kind, d_model, n_heads=n_heads, d_head=d_head, dropout=dropout,
                   use_mask=use_mask, head_chunk_size=head_chunk_size, max_len=max_len,
                   use_bias=use_bias, rotary=rotary, mode=mode, name='ChunkedCausalAttention')


def ChunkedSelfAttention(d_model, n_heads=8, chunk_len=128, n_chunks_before=1,  # pylint: disable=invalid-name
                         n_chunks_after=1, d_head=None, dropout=0.0, use_mask=False,
                         head_chunk_size=None, use_bias=True, mode='train', rotary=False):
  """Bidirectional local attention: chunk i sees chunks i - before .. i + after."""
  kind = ChunkedKind(chunk_len, n_chunks_before=n_chunks_before,
                          n_chunks_after=n_chunks_after, causal=False)
  return Attention(kind, d_model, n_heads=n_heads, d_head=d_head, dropout=dropout,
                   use_mask=use_mask, head_chunk_size=head_chunk_size, use_bias=use_bias,
                   rotary=rotary, mode=mode, name='ChunkedSelfAttention')


__all__ = ['CausalAttention', 'ChunkedKind', 'ChunkedCausalAttention',
           'ChunkedSelfAttention', 'DotProductKind', 'SelfAttention']
