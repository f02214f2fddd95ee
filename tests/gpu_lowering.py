"""Lowering for a GPU on a CPU: an abstract H200 in scope, StableHLO with the Triton kernels.

CI has no GPU, and the Pallas interpreter that runs the kernels there never runs JAX's
Triton lowering. Under `abstract_gpu()` the layers pick their kernels as on the GPU
(`plait.layers.attention.base.on_gpu`) and a jitted function lowers for CUDA: every Pallas
kernel in it goes through the Triton lowering (compiling the Triton IR needs the GPU).
Arrays cannot be made inside (JAX has no device there): pass ShapeDtypeStructs.

  >>> text = lowered_for_cuda(jax.grad(loss), abstract(weights), x_struct)
  >>> kernel_names(text)          # ['plait_sparse_dkv_kernel', ...]
"""
import contextlib

import jax

H200 = jax.sharding.AbstractDevice(device_kind='NVIDIA H200', num_cores=132, platform='gpu')
# The block-sparse kernel family's three kernels (block-sparse and LSH attention), as
# `kernel_names` lists them.
SPARSE_KERNELS = ['plait_sparse_dkv_kernel', 'plait_sparse_dq_kernel', 'plait_sparse_fwd_kernel']
# Causal FAVOR+ with the softmax kernel: the product's kernels and the feature maps'.
CAUSAL_FAVOR_KERNELS = ['plait_favor_output', 'plait_favor_states', 'plait_favor_query_features',
                        'plait_favor_query_grad_features', 'plait_favor_key_max_features',
                        'plait_favor_key_features', 'plait_favor_key_grad_features']


@contextlib.contextmanager
def abstract_gpu():
  """An abstract mesh of one H200 in scope."""
  mesh = jax.sharding.AbstractMesh((1,), ('x',), abstract_device=H200)
  with jax.sharding.use_abstract_mesh(mesh):
    yield


def abstract(tree):
  """The tree's arrays as ShapeDtypeStructs."""
  return jax.tree.map(lambda t: jax.ShapeDtypeStruct(t.shape, t.dtype), tree)


def lowered_for_cuda(fn, *args):
  """StableHLO text of jit(fn) at these ShapeDtypeStruct args, lowered for CUDA on the H200."""
  with abstract_gpu():
    return jax.jit(fn).trace(*args).lower(lowering_platforms=('cuda',)).as_text()


def kernel_names(text):
  """The names of plait's Pallas kernels in a lowered module's Triton custom calls, sorted."""
  return sorted({word.split('"')[0] for word in text.split('name = "')[1:]
                 if word.startswith('plait_')})


def outer_equations(jaxpr):
  """The equations of a jaxpr and of every jaxpr nested in it, except inside pallas_call
  (the kernels' bodies): what runs around the kernels, and the kernel calls themselves."""
  for eqn in jaxpr.eqns:
    yield eqn
    if eqn.primitive.name != 'pallas_call':
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        yield from outer_equations(sub)


def pallas_calls(jaxpr):
  """The pallas_call equations of a jaxpr, nested ones included (CPU, interpret)."""
  return [eqn for eqn in outer_equations(jaxpr) if eqn.primitive.name == 'pallas_call']


def live_pallas_calls(jaxpr):
  """pallas_calls of the jaxpr without those whose outputs nothing uses: the GPU compiler
  drops those (a Triton call has no side effects), while JAX's own dead-code pass keeps
  every pallas_call; here it runs with pallas_call's rule taken out."""
  # pylint: disable=import-outside-toplevel
  from jax._src.interpreters import partial_eval as pe
  from jax._src.pallas.pallas_call import pallas_call_p
  rule = pe.dce_rules.pop(pallas_call_p)
  try:
    live, _ = pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))
  finally:
    pe.dce_rules[pallas_call_p] = rule
  return pallas_calls(live)
