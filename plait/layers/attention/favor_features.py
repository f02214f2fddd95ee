"""Random feature maps for FAVOR+ (Performer): phi(q) . phi(k) estimates a kernel k(q, k).

Softmax kernel, positive random features. For w ~ N(0, I_d),
  exp(q . k) = E_w[exp(w . q - |q|^2 / 2) * exp(w . k - |k|^2 / 2)],
so m draws w_1..w_m give features phi(x)_i = exp(w_i . x - |x|^2 / 2) / sqrt(m) whose dot
product is an unbiased, always positive estimate of exp(q . k) (sin/cos features can go
negative and then the attention denominator blows up). q and k are scaled by d^(-1/4) so
that q . k carries softmax attention's 1/sqrt(d). The w_i come in blocks of d orthogonal
directions with chi(d)-distributed norms, which lowers the variance further.

Rescaling. Attention divides sum_j phi(q).phi(k_j) v_j by sum_j phi(q).phi(k_j), so a
factor shared by all keys, or by all features of one query, cancels. We use this to keep
exp() in range: query features are exp(w . q' - max_i w_i . q') (row max 1) and key
features exp(w . k' - |k'|^2 / 2 - c), c one constant for the whole sequence (the max over
real keys, so every key feature is <= 1). The 1/sqrt(m) cancels too and is dropped. The
numerical stabilizer eps is added to the QUERY features only: key j's weight is then
sum_i (phi(q)_i + eps) phi(k_j)_i, still a common multiple of e^-c, so the output does not
depend on c at all. That is what lets causal attention take c over the whole sequence
without leaking anything about later tokens, and lets decoding move c as tokens arrive.
eps keeps each weight at least eps * (the key's feature mass), so denominators stay > 0.

ReLU kernel: phi(x) = relu(W x') + eps for queries and keys (a different positive kernel,
k(q, k) = sum_i relu(w_i . q') relu(w_i . k'); no exp, so no rescaling). With projection
None, W is the identity: phi(x) = relu(x') + eps, deterministic features of width d (the
Performer's "generalized attention" as Long Range Arena ran it; the ReLU kernel only).

  >>> w = orthogonal_random_features(jax.random.key(0), 256, 64)   # (256, 64)
  >>> qf = favor_features(q, w, is_query=True)                       # (L, 256)
  >>> kf = favor_features(k, w, mask=mask)                           # 0 at padded keys
  >>> out = (qf @ (kf.T @ v)) / (qf @ kf.sum(0))[:, None]            # ~ softmax attention
"""
import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.attention import qr_kernel
from plait.layers.attention.base import kernel_implementation, large_negative

KERNELS = ('softmax', 'relu')


def orthogonal_random_features(rng, nb_features, d, implementation=None):
  """A (nb_features, d) float32 projection: blocks of d orthogonal rows, chi(d) row norms.

  Each block is the Q of a Gaussian matrix's QR (signs fixed so it is Haar-distributed);
  the last block is cut to size. Row norms are those of independent N(0, I_d) vectors, so
  each row is marginally N(0, I_d) as the unbiased estimator needs.

  implementation: who computes the QR. None/'auto': `qr_kernel.py` on a GPU for d <= 128,
  `jnp.linalg.qr` otherwise; 'xla': `jnp.linalg.qr`; 'pallas': the kernel (a ValueError
  without a GPU or for d > 128); 'interpret': the kernel in the Pallas interpreter (tests).
  All give the same matrix up to rounding.
  """
  n_blocks = -(-nb_features // d)
  r_blocks, r_norms = jax.random.split(rng)
  blocks = jax.random.normal(r_blocks, (n_blocks, d, d), jnp.float32)
  norm_samples = jax.random.normal(r_norms, (nb_features, d), jnp.float32)
  impl = kernel_implementation('orthogonal_random_features', implementation, jnp.float32,
                               qr_kernel.supported(d), f'd <= 128; got d={d}', half_only=False)
  if impl == 'xla':
    return _orthogonalize(blocks, norm_samples, jnp)
  q = qr_kernel.orthogonal_factor(blocks, interpret=impl == 'interpret')
  return _rows_with_norms(q, norm_samples, jnp)


def fixed_orthogonal_features(seed, nb_features, d):
  """`orthogonal_random_features` drawn on the host with numpy from an integer seed.

  For fixed features: a constant of the model that costs no JAX compilation (random
  bit generation is slow to compile on CPU) and is the same inside and outside jit.
  """
  gen = np.random.default_rng(seed)
  blocks = gen.standard_normal((-(-nb_features // d), d, d))
  return _orthogonalize(blocks, gen.standard_normal((nb_features, d)), np).astype(np.float32)


def _orthogonalize(blocks, norm_samples, xp):
  """Gaussian (n_blocks, d, d) and (m, d) samples -> the (m, d) projection; xp: np or jnp."""
  q, r = xp.linalg.qr(blocks)
  q = q * xp.sign(xp.diagonal(r, axis1=-2, axis2=-1))[..., None, :]
  return _rows_with_norms(q, norm_samples, xp)


def _rows_with_norms(q, norm_samples, xp):
  """(n_blocks, d, d) orthogonal factors -> (m, d): their rows, scaled to the samples' norms."""
  m, d = norm_samples.shape
  rows = xp.swapaxes(q, -1, -2).reshape(-1, d)[:m]
  return rows * xp.linalg.norm(norm_samples, axis=-1)[:, None]


def _projected(x, projection):
  """x scaled by d^(-1/4), and its projections (..., L, m) (projection None: the identity)."""
  x = x * x.shape[-1] ** -0.25
  if projection is None:
    return x, x
  return x, jnp.einsum('...ld,md->...lm', x, projection.astype(x.dtype))


def query_features(q, projection, kernel='softmax', stabilizer=1e-6):
  """(..., L, d) queries -> (..., L, m) positive features (row max 1 + eps for softmax)."""
  _, proj = _projected(q, projection)
  if kernel == 'relu':
    return jax.nn.relu(proj) + stabilizer
  return jnp.exp(proj - jax.lax.stop_gradient(jnp.max(proj, axis=-1, keepdims=True))) + stabilizer


def key_logits(k, projection):
  """Softmax kernel: log of the unscaled key features, w_i . k' - |k'|^2 / 2, (..., L, m)."""
  k, proj = _projected(k, projection)
  return proj - 0.5 * jnp.sum(k * k, axis=-1, keepdims=True)


def max_key_logit(logits, mask=None):
  """The largest logit over real keys (stop_gradient), shape (..., 1, 1).

  With no real key it is `large_negative`: finite, so that a later exp(old - new) is 0 or
  1, never NaN.
  """
  if mask is not None:
    logits = jnp.where(mask[..., None], logits, large_negative(logits.dtype))
  return jax.lax.stop_gradient(jnp.max(logits, axis=(-2, -1), keepdims=True))


def key_features_from_logits(logits, log_scale, mask=None):
  """exp(logits - log_scale), exactly 0 at padded keys (exp of `large_negative`)."""
  shifted = logits - log_scale
  if mask is not None:
    shifted = jnp.where(mask[..., None], shifted, large_negative(shifted.dtype))
  return jnp.exp(shifted)


def key_features(k, projection, kernel='softmax', stabilizer=1e-6, mask=None):
  """(..., L, d) keys -> (..., L, m) features, rescaled by the max over real keys; 0 if padded."""
  if kernel == 'relu':
    feats = jax.nn.relu(_projected(k, projection)[1]) + stabilizer
    return feats if mask is None else jnp.where(mask[..., None], feats, 0.0)
  logits = key_logits(k, projection)
  return key_features_from_logits(logits, max_key_logit(logits, mask), mask)


def favor_features(x, projection, kernel='softmax', is_query=False, stabilizer=1e-6,
                   mask=None):
  """FAVOR+ features of queries (`is_query=True`) or keys (mask: (..., L) bool, keys only)."""
  if kernel not in KERNELS:
    raise ValueError(f'favor_features: kernel must be one of {KERNELS}, got {kernel!r}.')
  if projection is None and kernel != 'relu':
    raise ValueError("favor_features: projection=None (deterministic features) needs "
                     f"kernel='relu'; got kernel={kernel!r}.")
  if is_query:
    return query_features(x, projection, kernel, stabilizer)
  return key_features(x, projection, kernel, stabilizer, mask)


__all__ = ['favor_features', 'fixed_orthogonal_features', 'orthogonal_random_features']
