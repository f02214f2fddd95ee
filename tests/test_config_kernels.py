"""The GPU demo configs' efficient attention takes the fused kernels on a GPU, and their train
steps lower for it.

`auto` picks a kernel for bf16/fp16 inputs only, so a change that left a config's attention
in float32 (or a size the kernel refuses) would silently keep the slower XLA path on the GPU.
Checked on CPU by lowering each config's bf16 train step for CUDA under an abstract H200
(tests/gpu_lowering.py): the whole step (model, loss, optimizer, the features' QR redraw)
goes through JAX's Triton lowering, which the interpreter-run CPU tests never reach (the
Performer config's QR kernel once failed there on the H200 alone). float32 compute is the
control: no kernel.
"""
import gin
import jax
import jax.numpy as jnp
import pytest

import plait.layers as tl
from plait import rl_free_configs
from plait.supervised import optimizers, trainer
from plait.supervised.train_step import make_train_step
from tests.gpu_lowering import (CAUSAL_FAVOR_KERNELS, SPARSE_KERNELS, abstract, kernel_names,
                                lowered_for_cuda)

LENGTH = 1024   # sizes only: the kernel choice does not depend on the length above BigBird's minimum
MODELS = {'bigbird_crime_and_punishment': 'BigBirdLM',
          'reformer_crime_and_punishment': 'ReformerLM',
          'performer_crime_and_punishment': 'PerformerLM'}


def kernels(name, compute_dtype):
  """The names of the Pallas kernels in config `name`'s train step, lowered for CUDA."""
  gin.clear_config()
  trainer.parse_config([rl_free_configs.path(name)], [f'{MODELS[name]}.max_len = {LENGTH}'])
  model = gin.query_parameter('train.model').scoped_configurable_fn(mode='train')
  gin.clear_config()
  tokens = jnp.ones((1, LENGTH), jnp.int32)
  weights, state = model.init(jax.ShapeDtypeStruct(tokens.shape, jnp.int32), rng=jax.random.key(0))
  optimizer = optimizers.Adam(1e-4)
  step = make_train_step(model, tl.CrossEntropyLoss(), optimizer, compute_dtype=compute_dtype)
  data = (tokens, tokens, jnp.ones(tokens.shape, jnp.float32))
  return kernel_names(lowered_for_cuda(step, *abstract(
      (weights, state, optimizer.init(weights), data, jax.random.key(1)))))


EXPECTED = {'bigbird_crime_and_punishment': SPARSE_KERNELS,
            'reformer_crime_and_punishment': SPARSE_KERNELS,
            'performer_crime_and_punishment': sorted(CAUSAL_FAVOR_KERNELS
                                                     + ['plait_orthogonal_factor'])}


@pytest.mark.parametrize('name', sorted(MODELS))
def test_the_novel_configs_train_step_lowers_with_the_kernels_for_a_gpu(name):
  assert kernels(name, jnp.bfloat16) == EXPECTED[name]


def test_in_float32_the_same_config_keeps_the_xla_path():
  assert kernels('bigbird_crime_and_punishment', jnp.float32) == []
