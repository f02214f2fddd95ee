"""Session 52 (CPU): what a CPU can do with a Mosaic GPU kernel in JAX 0.11.2, tried on JAX's own
Mosaic flash attention (`jax.experimental.pallas.ops.gpu.attention_mgpu`), fwd+bwd:
1. lower it for CUDA (`lowering_platforms=('cuda',)`): works (a compile-level check);
2. run it in the GPU interpret mode (`force_gpu_interpret_mode`): fails, the wgmma pipeline's
   effect does not lower on a CPU.
  python benchmarks/results/cpu_session52/mosaic_gpu_on_cpu.py
"""
import jax
import jax.numpy as jnp
from jax._src.pallas.mosaic_gpu.interpret import params as interpret_params
from jax.experimental.pallas.ops.gpu import attention_mgpu


class _Cuda13:
  """attention_mgpu asks the CUDA runtime's version (for a ptxas bug); a CPU has none."""
  @staticmethod
  def cuda_runtime_get_version():
    return 13000


attention_mgpu.cuda_versions = _Cuda13()
CONFIG = attention_mgpu.TuningConfig(block_q=64, block_kv=128, max_concurrent_steps=2,
                                     block_q_dkv=64, block_kv_dkv=64, block_q_dq=64,
                                     block_kv_dq=64)


def grads(q, k, v):
  loss = lambda q, k, v: attention_mgpu.attention(q, k, v, CONFIG).astype(jnp.float32).sum()
  return jax.grad(loss, argnums=(0, 1, 2))(q, k, v)


def main():
  shape = jax.ShapeDtypeStruct((1, 4096, 8, 64), jnp.float16)
  text = jax.jit(grads).trace(shape, shape, shape).lower(lowering_platforms=('cuda',)).as_text()
  print(f'lowered for CUDA: {len(text):,} characters of StableHLO, '
        f"{text.count('stablehlo.custom_call')} kernel calls (forward, dq, dk/dv)", flush=True)
  q, k, v = (jax.random.normal(key, (1, 256, 1, 64), jnp.float16)
             for key in jax.random.split(jax.random.key(0), 3))
  try:
    with interpret_params.force_gpu_interpret_mode(interpret_params.InterpretGPUParams()):
      jax.block_until_ready(attention_mgpu.attention(q, k, v, CONFIG))
    print('interpreted: ran')
  except Exception as e:  # pylint: disable=broad-except
    print(f'interpreted: {type(e).__name__}: {str(e).splitlines()[-1][:200]}')


if __name__ == '__main__':
  main()
