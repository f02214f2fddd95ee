"""Every Pallas kernel lowers for Triton on a CPU, through the layers users build, fwd and bwd.

CI has no GPU. The kernels' values are checked on CPU in the Pallas interpreter, which never
runs the Triton lowering; a kernel the interpreter takes can still fail to lower (the QR
kernel's scalar `where` gave "AssertionError: ('i1', 'f32')" on the H200). Here an abstract
H200 is in scope (`jax.sharding.use_abstract_mesh`), so each layer picks its kernels as on the
GPU (`base.on_gpu`), and its training gradient is lowered for CUDA: every kernel, forward and
backward, goes through JAX's Triton lowering. Compiling the Triton IR needs a GPU (the suite).
"""
import jax
import jax.numpy as jnp
import pytest

from plait.layers.attention import (BlockSparseAttention, CausalAttention,
                                    CausalBlockSparseAttention, CausalFavorAttention,
                                    FavorAttention, LSHSelfAttention, base)
from plait.shapes import ShapeDtype
from tests.gpu_lowering import (CAUSAL_FAVOR_KERNELS, SPARSE_KERNELS, abstract, abstract_gpu,
                                kernel_names, lowered_for_cuda)


def lowered_train_gradient(layer, length, d_model=64, batch=2):
  """StableHLO text of d(sum of the layer's bf16 output)/d(weights, x), lowered for CUDA."""
  shape = ShapeDtype((batch, length, d_model), jnp.bfloat16)
  weights, state = layer.init(shape, rng=jax.random.key(0))  # on the CPU: it runs eagerly

  def loss(weights, x):
    y, _ = layer.pure_fn(x, weights, state, rng=jax.random.key(1))
    return jnp.sum(y.astype(jnp.float32))

  return lowered_for_cuda(jax.grad(loss, argnums=(0, 1)), abstract(weights),
                          jax.ShapeDtypeStruct(shape.shape, shape.dtype))


BIDIR = ['plait_favor_bidir_key_grads', 'plait_favor_bidir_key_sums',
         'plait_favor_bidir_query_grads', 'plait_favor_bidir_query_sums']
QR = ['plait_orthogonal_factor']


@pytest.mark.parametrize('make,length,expected', [
    (lambda: FavorAttention(64, n_heads=2, nb_features=64), 256,
     BIDIR + ['plait_favor_bidir_output'] + QR),
    (lambda: CausalFavorAttention(64, n_heads=2, nb_features=64), 256,
     CAUSAL_FAVOR_KERNELS + QR),
    (lambda: CausalFavorAttention(64, n_heads=2, nb_features=64, recompute_features=False), 256,
     CAUSAL_FAVOR_KERNELS + QR),
    (lambda: LSHSelfAttention(64, n_heads=2, n_buckets=8, chunk_len=32, causal=True), 256,
     SPARSE_KERNELS),
    (lambda: LSHSelfAttention(64, n_heads=2, n_hashes=2, n_buckets=8, chunk_len=32), 256,
     SPARSE_KERNELS),
    (lambda: BlockSparseAttention(64, n_heads=2, block_size=32, num_rand_blocks=2), 512,
     SPARSE_KERNELS),
    (lambda: CausalBlockSparseAttention(64, n_heads=2, block_size=32, num_rand_blocks=2), 512,
     SPARSE_KERNELS),
], ids=['favor', 'favor_causal', 'favor_causal_kept_features', 'lsh_causal', 'lsh_2_hashes',
        'block_sparse', 'block_sparse_causal'])
def test_layer_gradient_lowers_for_triton(make, length, expected):
  assert kernel_names(lowered_train_gradient(make(), length)) == sorted(expected)


def test_the_abstract_gpu_is_what_picks_the_kernels():
  """Without it the same layer lowers to plain XLA: the test above sees real kernels."""
  assert not base.on_gpu()
  with abstract_gpu():
    assert base.on_gpu()
  layer = FavorAttention(64, n_heads=2, nb_features=64)
  shape = ShapeDtype((2, 256, 64), jnp.bfloat16)
  weights, state = layer.init(shape, rng=jax.random.key(0))
  text = jax.jit(lambda w, x: layer.pure_fn(x, w, state, rng=jax.random.key(1))[0]).trace(
      weights, jax.ShapeDtypeStruct(shape.shape, shape.dtype)).lower().as_text()
  assert kernel_names(text) == []


def test_dense_attention_picks_cudnn_on_the_gpu():
  """cuDNN's flash kernel cannot be lowered without cuDNN (the suite runs it); the pick can."""
  q = jnp.ones((2, 2, 256, 64), jnp.bfloat16)
  kind = CausalAttention(64, n_heads=2).kind
  with abstract_gpu():
    assert kind.pick_implementation(q, None) == 'cudnn'
  assert kind.pick_implementation(q, None) == 'xla'
