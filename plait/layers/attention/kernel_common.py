"""What the Pallas (Triton) kernel modules of the attention family share.

  >>> block_dot(a, b, trans_b=True)        # a @ b.T of 2-D blocks, float32 accumulation
  >>> pow2_at_least(65)                    # 128: a width Triton's blocks and dots take
  >>> triton_params(4, 2, interpret=False) # CompilerParams(num_warps=4, num_stages=2)
"""
import jax
import jax.numpy as jnp

__all__ = ['block_dot', 'pow2_at_least', 'triton_params']


def block_dot(a, b, trans_a=False, trans_b=False):
  """a @ b of 2-D blocks (either transposed) accumulated in float32."""
  dims = (((0 if trans_a else 1,), (1 if trans_b else 0,)), ((), ()))
  return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


def pow2_at_least(n, floor=16):
  """The smallest power of two >= max(n, floor) (Triton's block shapes and dot sizes)."""
  return 1 << (max(n, floor) - 1).bit_length()


def triton_params(num_warps, num_stages, interpret):
  """Triton compiler parameters for a pallas_call; None when it runs in the interpreter."""
  if interpret:
    return None
  from jax.experimental.pallas import triton as plgpu  # pylint: disable=import-outside-toplevel
  return plgpu.CompilerParams(num_warps=num_warps, num_stages=num_stages)
