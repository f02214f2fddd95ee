"""FAVOR+ attention (Performer): softmax attention in O(L) through random features.

softmax(q k^T) v is approximated by phi(q) (phi(k)^T v), normalized by phi(q) phi(k)^T 1,
with phi the positive orthogonal random features of `favor_features.py` (or the ReLU
kernel). Bidirectional attention uses associativity: phi(k)^T [v, 1] is one (m, d + 1)
matrix. Causal attention needs the prefix sums of phi(k_j) [v_j, 1]^T; `favor_causal.py`
computes them chunk by chunk under a custom VJP that never builds an (L, m, d) tensor.
Padded keys (mask False) get zero features, so they contribute exactly nothing; a query
that sees no real key outputs 0 (the family convention). Key features are scaled by the
max over all real keys (see favor_features.py: the output does not depend on it, so causal
attention leaks nothing); a position all of whose visible keys sit e^87 below that max
underflows and outputs 0 rather than NaN.

Features and the redraw policy:
  - train mode with `redraw=True`: a fresh projection per call from the layer's rng, one
    per head and shared by the whole batch (like the Performer's one matrix per layer;
    `attend_batched` draws head h's from the rng key of pair (0, h)). `attend` on one pair
    (a (1, 1) batch) draws from its own key, so vmapping `attend` draws per pair instead:
    same distribution, not the same numbers. Train mode with redraw and no rng is an error.
  - otherwise (redraw=False, eval, predict): one fixed projection from `feature_seed`,
    shared by all heads, so eval and predict use exactly the same features.
Predict mode (causal only) keeps S = sum_j phi(k_j) v_j^T (m, d_head), z = sum_j phi(k_j)
(m,), the log-scale c they are stored at, and the position: each new token costs
O(m * d_head), and a prompt then one token per call equals the full causal output.

Train/eval on GPU (bf16/fp16) runs on Pallas kernels (`implementation=`, see FavorKind):
causal attention's prefix-sum product on `favor_kernel.py` (bf16 matmul operands, float32
running sums) with the softmax-kernel feature maps made by `favor_feature_kernel.py` (float32
in registers, written in bf16), bidirectional softmax-kernel attention whole on
`favor_bidir_kernel.py` (features computed in the kernels, never stored). The XLA paths
(`favor_causal.py`, the two matmuls here) stay the portable path and the oracle.

  >>> layer = CausalFavorAttention(d_model=512, n_heads=8, nb_features=256)   # a plait Layer
  >>> weights, state = layer.init(ShapeDtype((2, 1024, 512)))
  >>> y, state = layer.pure_fn(x, weights, state, rng=jax.random.key(step))
"""
import functools

import jax
from jax.ad_checkpoint import checkpoint_name
import jax.numpy as jnp

from plait.layers.attention import favor_bidir_kernel, favor_feature_kernel, favor_kernel
from plait.layers.attention.base import (Attention, AttentionKind, kernel_implementation,
                                         large_negative, vmap_pairs)
from plait.layers.attention.favor_causal import causal_product, chunked_product
from plait.layers.attention.favor_features import (
    KERNELS, fixed_orthogonal_features, key_features,
    key_features_from_logits, key_logits, max_key_logit, orthogonal_random_features,
    query_features)

IMPLEMENTATIONS = (None, 'auto', 'xla', 'pallas', 'interpret')


class FavorKind(AttentionKind):
  """The FAVOR+ per-head algorithm (wrap with `Attention`, or use `FavorAttention` /
  `CausalFavorAttention`).

  Args:
    nb_features: number of random features m (more = closer to softmax, cost O(L m d)).
      None (kernel='relu' only): deterministic features, no random projection: phi(x) =
      relu(x') + eps on the queries and keys themselves (x' = x / d_head^(1/4)), m = d_head;
      the Performer's "generalized attention" as Long Range Arena ran it (there eps is
      0.001: set numerical_stabilizer). Nothing is drawn, so redraw plays no part.
    kernel: 'softmax' (positive orthogonal random features) or 'relu'.
    causal: each position sees only itself and earlier positions.
    redraw: in train mode draw new features from the rng on every call (see module doc).
    numerical_stabilizer: eps added to query features (and ReLU key features).
    feature_seed: seed of the fixed features used without redraw and in eval/predict.
    chunk_size: rows per chunk of the causal prefix sums.
    implementation: how train/eval runs. None/'auto': the Pallas kernels on GPU for
      bf16/fp16 inputs they take, XLA otherwise. Causal: the prefix-sum kernels
      (`favor_kernel.py`; chunk_size a power of two in 16..256), fed by the feature-map
      kernels (`favor_feature_kernel.py`) for the softmax kernel. Bidirectional: the whole
      attention (`favor_bidir_kernel.py`; softmax kernel, nb_features <= 512, d_head <=
      128), which stores no feature map at all, so auto takes it only with
      recompute_features=True. 'xla' forces XLA (the portable path and the oracle);
      'pallas' forces the kernels and raises when they can't run; 'interpret' runs them
      through the Pallas interpreter (any backend, slow: for tests). Predict mode always
      uses XLA running sums. The redrawn features' QR follows the same choice
      (`qr_kernel.py` on GPU, see orthogonal_random_features).
    recompute_features: True: keep no (L, m) feature maps for the backward pass (they are
      recomputed there; the (L, d_head + 1) float32 sums are kept, so the product is not
      run again; bidirectional attention on GPU runs the kernels, which never store them):
      memory near a Transformer's. False: keep them: faster, m / d_head times q's size
      kept per layer. Values are the same.
  """

  compactable = True   # sums over the real keys' features: positions play no part

  def __init__(self, nb_features=256, kernel='softmax', causal=False, redraw=True,
               numerical_stabilizer=1e-6, feature_seed=0, chunk_size=128,
               implementation=None, recompute_features=True):
    name = 'CausalFavor' if causal else 'Favor'
    if implementation not in IMPLEMENTATIONS:
      raise ValueError(f'{name}: implementation must be one of {IMPLEMENTATIONS}, got '
                       f'{implementation!r}.')
    if implementation in ('pallas', 'interpret') and not causal and kernel != 'softmax':
      raise ValueError(f'{name}: implementation={implementation!r}: the bidirectional kernels '
                       "compute the softmax kernel's features; kernel='relu' has only the XLA "
                       "path (use None or 'xla').")
    if kernel not in KERNELS:
      raise ValueError(f'{name}: kernel must be one of {KERNELS}, got {kernel!r}.')
    if nb_features is None and kernel != 'relu':
      raise ValueError(f"{name}: nb_features=None (deterministic features) needs kernel='relu': "
                       'the softmax kernel is estimated by random features only; got '
                       f'kernel={kernel!r}.')
    if (nb_features is not None and nb_features < 1) or chunk_size < 1:
      raise ValueError(f'{name}: need nb_features >= 1 and chunk_size >= 1, got '
                       f'nb_features={nb_features}, chunk_size={chunk_size}.')
    if numerical_stabilizer < 0:
      raise ValueError(f'{name}: numerical_stabilizer must be >= 0, got {numerical_stabilizer}.')
    self.nb_features, self.kernel, self.causal, self.redraw = nb_features, kernel, causal, redraw
    self.numerical_stabilizer, self.feature_seed = numerical_stabilizer, feature_seed
    self.chunk_size, self.name, self.implementation = chunk_size, name, implementation
    self.recompute_features = bool(recompute_features)

  def init_state(self, batch_size, n_heads, length, d_head, dtype, mode):
    """Predict mode: (S (m, d_head), z (m,), log_scale (), position ()); else ()."""
    if mode != 'predict':
      return ()
    m = d_head if self.deterministic else self.nb_features
    return (jnp.zeros((m, d_head), jnp.float32), jnp.zeros((m,), jnp.float32),
            jnp.full((), large_negative(jnp.float32), jnp.float32),  # No key seen yet.
            jnp.zeros((), jnp.int32))

  def check_length(self, length, mode):
    del length
    if mode == 'predict' and not self.causal:
      raise ValueError(f'{self.name}: predict mode (decoding) needs causal attention; '
                       'use CausalFavorAttention.')

  # ----- features -----
  @property
  def deterministic(self):
    """No random projection (nb_features=None): the ReLU features of q and k themselves."""
    return self.nb_features is None

  def redraws(self, mode):
    """Whether this call draws its features from the rng (train mode with redraw)."""
    return self.redraw and mode == 'train' and not self.deterministic

  def projection(self, rng, d_head, mode):
    """The (m, d_head) projection for one head: drawn from rng, or the fixed one; None for
    deterministic features (the identity)."""
    if self.deterministic:
      return None
    if self.redraws(mode):
      if rng is None:
        raise ValueError(f'{self.name}: redraw=True in train mode draws random features from '
                         'the rng: pass rng=jax.random.key(...) to pure_fn, or build with '
                         "redraw=False or mode='eval'.")
      return orthogonal_random_features(rng, self.nb_features, d_head, self.implementation)
    return _fixed_projection(self.feature_seed, self.nb_features, d_head)

  # ----- attention -----
  def attend_batched(self, q, k, v, mask, state, rng, mode):
    """(B, H, L, d_head) arrays; redrawn features are per head, shared across the batch.

    Head h draws its projection from the rng key of pair (0, h); `vmap_pairs` hands that
    key to every batch element of the head (so the draw is made once per head).
    """
    d_head = q.shape[-1]
    head_keys = rng[0] if rng is not None and self.redraws(mode) else None
    if mode != 'predict' and not self.causal:
      impl = self.pick_implementation(v.dtype, d_head)
      if impl != 'xla':
        return self._attend_kernel(q, k, v, mask, head_keys, mode, impl), state
    pairs = q.shape[0] * q.shape[1]
    def one(q1, k1, v1, mask1, state1, _, head_key):
      projection = self.projection(head_key, d_head, mode)  # Raises if it needs a key.
      return self.attend_with_projection(q1, k1, v1, mask1, state1, projection, mode, pairs)
    return vmap_pairs(one, q, k, v, mask, state, per_head=head_keys)

  def attend_with_projection(self, q, k, v, mask, state, projection, mode, pairs=1):
    """One pair with a given (m, d_head) projection: returns (out (Lq, d_head), new_state).

    pairs: how many pairs run together under vmap (sizes the causal kernels' grid)."""
    if mode == 'predict':
      out_dtype = v.dtype
      q, k, v = _features_dtype(q, k, v)
      qf = query_features(q, projection, self.kernel, self.numerical_stabilizer)
      out, state = self._decode(qf, k, _with_ones(v), mask, state, projection)
      return _normalize(out).astype(out_dtype), state
    # The (L, m) float32 feature maps are m / d_head times larger than q, k and v: keeping
    # them for the backward made a PerformerLM step need ~2.2x the memory (RESULTS 15).
    # Recomputing them there (jax.checkpoint: q, k, v, mask, the projection, the keys' max
    # and the (L, d_head + 1) sums are kept) costs one more feature pass; keeping the sums,
    # which the normalization's backward needs, spares a second run of the product, and
    # keeping the max a second key-max kernel.
    attend = functools.partial(self._attend_full, pairs=pairs)
    attend = jax.checkpoint(attend, policy=_KEEP_SUMS) if self.recompute_features else attend
    return attend(q, k, v, mask, projection), state

  def _attend_kernel(self, q, k, v, mask, head_keys, mode, impl):
    """Bidirectional train/eval on `favor_bidir_kernel.py`: (B, H, L, d_head) arrays."""
    d_head = q.shape[-1]
    if self.redraws(mode):
      if head_keys is None:
        self.projection(None, d_head, mode)  # Raises: redraw needs an rng.
      projection = jax.vmap(lambda key: self.projection(key, d_head, mode))(head_keys)
    else:
      projection = jnp.asarray(self.projection(None, d_head, mode))
    return favor_bidir_kernel.favor_attention_kernel(
        q, k, v, mask, projection, self.numerical_stabilizer, interpret=impl == 'interpret')

  def _attend_full(self, q, k, v, mask, projection, pairs=1):
    """Train/eval output (Lq, d_head) from (L, d_head) q, k, v and the (m, d_head) projection."""
    out_dtype = v.dtype
    eps = self.numerical_stabilizer
    impl = self.pick_implementation(out_dtype, q.shape[-1]) if self.causal else 'xla'
    interpret = impl == 'interpret'
    if impl != 'xla' and self.kernel == 'softmax':  # Made in registers, written in out_dtype.
      qf = favor_feature_kernel.query_features_kernel(q, projection, eps, out_dtype, interpret)
      kf = favor_feature_kernel.key_features_kernel(k, projection, mask, out_dtype, interpret)
    else:
      q, k = _features_dtype(q, k)
      qf = query_features(q, projection, self.kernel, eps)
      kf = key_features(k, projection, self.kernel, eps, mask)
    if impl != 'xla':  # Operands in the model's dtype, float32 sums and output.
      # The kernels' column pieces are kept apart (d_head 64: [v] and [1]): concatenated
      # they would be one more (L, d_head + 1) float32 array, made only to be kept. The
      # ones column is the kernel's own piece: [v, 1] is never made (XLA copied v to slice
      # it back out).
      pieces = favor_kernel.causal_product_kernel(
          qf.astype(out_dtype), kf.astype(out_dtype), v, self.chunk_size,
          interpret=interpret, split=True, ones_column=True, vmap_size=pairs)
    else:
      v1 = _with_ones(v.astype(q.dtype))
      pieces = [causal_product(qf, kf, v1, self.chunk_size) if self.causal
                else qf @ (kf.T @ v1)]
    return _normalize(*[checkpoint_name(piece, _SUMS) for piece in pieces]).astype(out_dtype)

  def pick_implementation(self, dtype, d_head=None):
    """'xla', 'pallas' or 'interpret' for train/eval on inputs of `dtype` (and heads of
    width d_head: bidirectional; None: not checked)."""
    if self.causal:
      return kernel_implementation(
          self.name, self.implementation, dtype, favor_kernel.supported(self.chunk_size, dtype),
          f'chunk_size a power of two in 16..256 and float inputs; got chunk_size='
          f'{self.chunk_size}, dtype={jnp.dtype(dtype)}')
    if self.implementation in (None, 'auto') and not self.recompute_features:
      return 'xla'  # Keeping the features in XLA was faster at LRA's sizes (RESULTS 17).
    fits = self.kernel == 'softmax' and favor_bidir_kernel.supported(
        dtype, self.nb_features, d_head)
    return kernel_implementation(
        self.name, self.implementation, dtype, fits,
        f"kernel='softmax', nb_features <= 512, d_head <= 128 and float inputs; got kernel="
        f'{self.kernel!r}, nb_features={self.nb_features}, d_head={d_head}, '
        f'dtype={jnp.dtype(dtype)}')

  def _decode(self, qf, k, v1, mask, state, projection):
    """Predict mode: extends the running sums by the new positions and attends to them."""
    s, z, log_scale, position = state
    total = jnp.concatenate([s, z[:, None]], axis=-1)
    if self.kernel == 'relu':
      kf = key_features(k, projection, 'relu', self.numerical_stabilizer, mask)
      new_scale = log_scale
    else:  # Move to the new max logit; the output is independent of the scale.
      logits = key_logits(k, projection)
      new_scale = jnp.maximum(log_scale, max_key_logit(logits, mask)[0, 0])
      total = total * jnp.exp(log_scale - new_scale)
      kf = key_features_from_logits(logits, new_scale, mask)
    out, total = chunked_product(qf, kf, v1.astype(total.dtype), self.chunk_size, initial=total)
    new_state = (total[:, :-1], total[:, -1], new_scale.astype(log_scale.dtype),
                 position + qf.shape[0])
    return out, new_state


@functools.lru_cache(maxsize=64)
def _fixed_projection(seed, nb_features, d_head):
  projection = fixed_orthogonal_features(seed, nb_features, d_head)
  projection.flags.writeable = False  # Shared by every call: keep the cached copy intact.
  return projection


def _features_dtype(*arrays):
  """The arrays in at least float32: the features are computed there."""
  dtype = jnp.promote_types(arrays[0].dtype, jnp.float32)
  return (t.astype(dtype) for t in arrays)


def _with_ones(v):
  """(..., L, d) -> (..., L, d + 1): a column of ones carries the attention denominator."""
  return jnp.concatenate([v, jnp.ones(v.shape[:-1] + (1,), v.dtype)], axis=-1)


_SUMS = 'favor_sums'   # [numerator, denominator]: what recompute_features keeps
# The keys' max c too: a recompute that keeps it runs the feature kernels but not the max's.
_KEEP_SUMS = jax.checkpoint_policies.save_only_these_names(
    _SUMS, favor_feature_kernel.KEY_MAX_NAME)


def _normalize(*pieces):
  """[numerator, denominator] (..., d + 1), whole or as column pieces -> numerator /
  denominator (..., d); 0 where it is 0. Only numerator pieces are ever concatenated (none
  when the pieces are [numerator] and [denominator], as the kernels give them at d 64)."""
  *front, last = pieces
  num = front + [last[..., :-1]] if last.shape[-1] > 1 else front
  num = num[0] if len(num) == 1 else jnp.concatenate(num, axis=-1)
  den = last[..., -1:]
  return num / jnp.where(den > 0, den, jnp.ones((), den.dtype))


# ----- layers -----
# pylint: disable=invalid-name
def FavorAttention(d_model, n_heads=8, nb_features=256, kernel='softmax', redraw=True,
                   numerical_stabilizer=1e-6, use_mask=False, dropout=0.0, max_len=2048,
                   mode='train', d_head=None, head_chunk_size=None, feature_seed=0,
                   use_bias=True, implementation=None, recompute_features=True, rotary=False):
  """Bidirectional FAVOR+ multi-head attention: (B, L, d_model) -> (B, L, d_model).

  implementation: None (auto), 'xla', 'pallas' or 'interpret'; recompute_features: see
  FavorKind.
  """
  kind = FavorKind(nb_features, kernel, causal=False, redraw=redraw,
                   numerical_stabilizer=numerical_stabilizer, feature_seed=feature_seed,
                   implementation=implementation, recompute_features=recompute_features)
  return Attention(kind, d_model, n_heads=n_heads, d_head=d_head, dropout=dropout,
                   use_mask=use_mask, head_chunk_size=head_chunk_size, max_len=max_len,
                   use_bias=use_bias, rotary=rotary, mode=mode, name='FavorAttention')


def CausalFavorAttention(d_model, n_heads=8, nb_features=256, kernel='softmax', redraw=True,
                         numerical_stabilizer=1e-6, use_mask=False, dropout=0.0, max_len=2048,
                         mode='train', d_head=None, head_chunk_size=None,
                         feature_seed=0, chunk_size=128, use_bias=True, implementation=None,
                         recompute_features=True, rotary=False):
  """Causal FAVOR+ attention (a decoder's); predict mode keeps running sums, O(1) per token.

  implementation: None (auto), 'xla', 'pallas' or 'interpret'; recompute_features: see
  FavorKind.
  """
  kind = FavorKind(nb_features, kernel, causal=True, redraw=redraw,
                   numerical_stabilizer=numerical_stabilizer, feature_seed=feature_seed,
                   chunk_size=chunk_size, implementation=implementation,
                   recompute_features=recompute_features)
  return Attention(kind, d_model, n_heads=n_heads, d_head=d_head, dropout=dropout,
                   use_mask=use_mask, head_chunk_size=head_chunk_size, max_len=max_len,
                   use_bias=use_bias, rotary=rotary, mode=mode, name='CausalFavorAttention')


# pylint: enable=invalid-name


__all__ = ['CausalFavorAttention', 'FavorAttention', 'FavorKind']
