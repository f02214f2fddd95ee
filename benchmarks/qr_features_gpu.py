"""The orthogonal random features' QR on the GPU: jnp.linalg.qr vs CholeskyQR2 (RESULTS 17).

FAVOR+ redraws (m / 64) QR decompositions of 64x64 Gaussian blocks per head and layer on every
training step. Prints, per batch of matrices: the median ms of each, CholeskyQR2's largest
deviation from orthogonality (NaN where a Gram matrix was too ill-conditioned for float32
Cholesky), and the whole feature draw for that many heads.

  python benchmarks/qr_features_gpu.py
"""
import time

import jax
import jax.numpy as jnp

from plait.layers.attention.favor_features import orthogonal_random_features


def cholesky_qr2(g):
  """Q of (..., n, n) matrices by two Cholesky-QR passes (Q = G L^-T, L L^T = G^T G)."""
  def once(g):
    gram = jnp.einsum('...ki,...kj->...ij', g, g, precision='highest')
    lower = jnp.linalg.cholesky(gram)
    return jax.lax.linalg.triangular_solve(lower, g, left_side=False, lower=True,
                                           transpose_a=True)
  return once(once(g))


def median_ms(fn, *args, reps=20):
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return sorted(times)[reps // 2] * 1e3


def main():
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  for heads in (4, 8, 32):
    g = jax.random.normal(jax.random.key(0), (heads * 4, 64, 64), jnp.float32)
    q = cholesky_qr2(g)
    gram = jnp.einsum('bki,bkj->bij', q, q, precision='highest')
    draw = lambda key, heads=heads: jax.vmap(
        lambda k: orthogonal_random_features(k, 256, 64))(jax.random.split(key, heads))
    print(dict(matrices=heads * 4, qr_ms=median_ms(lambda g: jnp.linalg.qr(g)[0], g),
               cholqr2_ms=median_ms(cholesky_qr2, g),
               cholqr2_orth_err=float(jnp.max(jnp.abs(gram - jnp.eye(64)))),
               features_ms=median_ms(draw, jax.random.key(1))), flush=True)


if __name__ == '__main__':
  main()
