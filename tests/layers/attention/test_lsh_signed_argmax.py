"""hashing.signed_argmax equals argmax over [x, -x] (ties, zeros, NaN) and saves memory."""
import jax
import jax.numpy as jnp
import numpy as np

from plait.layers.attention.lsh import hashing as lh


def concat_argmax(x):
  return jnp.argmax(jnp.concatenate([x, -x], axis=-1), axis=-1).astype(jnp.int32)


def test_equals_argmax_of_the_concatenation():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((3, 500, 6)).astype(np.float32)
  x[0, :50] = np.round(x[0, :50])                  # many ties, within and across halves
  x[1, :10] = 0.0                                  # all zero: index 0
  x[1, 10:20, 2] = -np.abs(x[1, 10:20]).max(-1) - 1  # the minimum wins: second half
  x[1, 20:30, 3] = np.abs(x[1, 20:30]).max(-1)     # +max equals -min: first half wins
  x[1, 20:30, 1] = -x[1, 20:30, 3]
  x[2, :5, 4] = np.nan
  x[2, 5:8, 0] = -0.0
  got = np.asarray(lh.signed_argmax(jnp.asarray(x)))
  np.testing.assert_array_equal(got, np.asarray(concat_argmax(jnp.asarray(x))))
  assert got.dtype == np.int32 and got.min() >= 0 and got.max() < 12
  assert len(np.unique(got[0])) == 12                # both halves are really used


def test_no_concatenated_temporary():
  s = jax.ShapeDtypeStruct((2, 2 ** 16, 64), jnp.float32)
  temp = lambda f: jax.jit(f).lower(s).compile().memory_analysis().temp_size_in_bytes
  concat_bytes = 2 * 2 ** 16 * 128 * 4
  assert temp(lh.signed_argmax) < concat_bytes // 4 <= temp(concat_argmax)
