"""The Pallas kernel modules' shared pieces: block products, widths, Triton parameters."""
import jax.numpy as jnp
import numpy as np

from plait.layers.attention.kernel_common import block_dot, pow2_at_least, triton_params
from tests.conftest import random_array


def test_block_dot_transposes_and_accumulates_in_float32():
  a = jnp.asarray(random_array((16, 32), 1), jnp.bfloat16)
  b = jnp.asarray(random_array((16, 32), 2), jnp.bfloat16)
  a32, b32 = (np.asarray(t, np.float32) for t in (a, b))
  for got, want in ((block_dot(a, b, trans_b=True), a32 @ b32.T),
                    (block_dot(a, b, trans_a=True), a32.T @ b32),
                    (block_dot(a, b.T), a32 @ b32.T)):
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_pow2_at_least():
  assert [pow2_at_least(n) for n in (1, 16, 17, 64, 65, 130)] == [16, 16, 32, 64, 128, 256]
  assert pow2_at_least(3, floor=1) == 4


def test_triton_params_are_none_in_the_interpreter():
  assert triton_params(4, 2, interpret=True) is None
  params = triton_params(8, 3, interpret=False)
  assert (params.num_warps, params.num_stages) == (8, 3)
