"""The orthogonal random features' QR on the GPU: `qr_kernel.py` vs jnp.linalg.qr.

FAVOR+ redraws (m / d) QR decompositions of (d, d) Gaussian blocks per head and layer on
every training step (RESULTS 17: cuSOLVER's batched QR, 1.85 ms per call whatever the batch,
was 14 % of an LRA Performer step). Per batch of 64x64 matrices (4 per head): the kernel's
largest deviation from XLA's sign-fixed Q, from orthogonality and from a triangular
Q^T A with a non-negative diagonal (checks: exit 1 past 1e-4), then the median ms of each
QR and of the whole vmapped feature draw on either path.

  python benchmarks/qr_features_gpu.py
  python benchmarks/qr_features_gpu.py --interpret --heads 1   # CPU dry run
"""
import argparse
import json
import sys

import jax
import jax.numpy as jnp

from bench_rows import median_ms  # pylint: disable=g-bad-import-order
from plait.layers.attention.favor_features import orthogonal_random_features
from plait.layers.attention.qr_kernel import orthogonal_factor

TOLERANCE = 1e-4


def xla_factor(a):
  q, r = jnp.linalg.qr(a)
  return q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def errors(q, a):
  """Largest deviations: from XLA's factor, from orthogonality, from triangular R >= 0."""
  eye = jnp.eye(a.shape[-1])
  with jax.default_matmul_precision('highest'):
    r = jnp.swapaxes(q, -1, -2) @ a
    orth = jnp.swapaxes(q, -1, -2) @ q - eye
  diag = jnp.diagonal(r, axis1=-2, axis2=-1)
  return dict(vs_xla=float(jnp.max(jnp.abs(q - xla_factor(a)))),
              orthogonality=float(jnp.max(jnp.abs(orth))),
              below_diagonal=float(jnp.max(jnp.abs(jnp.tril(r, -1))) / jnp.max(jnp.abs(a))),
              negative_diagonal=float(jnp.maximum(0.0, -jnp.min(diag))))


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('--heads', type=int, nargs='+', default=[4, 8, 32])
  p.add_argument('--interpret', action='store_true')
  args = p.parse_args(argv)
  impl = 'interpret' if args.interpret else 'pallas'
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}', flush=True)
  ok = True
  for heads in args.heads:
    a = jax.random.normal(jax.random.key(heads), (heads * 4, 64, 64), jnp.float32)
    kernel = lambda a: orthogonal_factor(a, interpret=args.interpret)
    errs = errors(jax.jit(kernel)(a), a)
    good = max(errs.values()) < TOLERANCE
    ok = ok and good
    draw = lambda key, impl, heads=heads: jax.vmap(
        lambda k: orthogonal_random_features(k, 256, 64, impl))(jax.random.split(key, heads))
    row = dict(matrices=heads * 4, errors=errs, passed=good,
               kernel_ms=median_ms(kernel, a), xla_qr_ms=median_ms(xla_factor, a),
               features_kernel_ms=median_ms(lambda key: draw(key, impl), jax.random.key(1)),
               features_xla_ms=median_ms(lambda key: draw(key, 'xla'), jax.random.key(1)))
    print(json.dumps(row), flush=True)
  print('qr kernel checks ' + ('ok' if ok else 'FAILED'), flush=True)
  return 0 if ok else 1


if __name__ == '__main__':
  sys.exit(main())
