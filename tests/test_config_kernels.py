"""The GPU demo configs' efficient attention takes the fused kernels on a GPU.

`auto` picks a kernel for bf16/fp16 inputs only, so a change that left a config's attention
in float32 (or a size the kernel refuses) would silently keep the slower XLA path on the GPU.
Checked on CPU by tracing each config's bf16 train step with the backend reported as 'gpu'
(tracing does not compile the kernels); float32 compute is the control: no kernel.
"""
from unittest import mock

import gin
import jax
import jax.numpy as jnp
import pytest

import plait.layers as tl
from plait import rl_free_configs
from plait.supervised import optimizers, trainer
from plait.supervised.train_step import make_train_step

LENGTH = 1024   # sizes only: the kernel choice does not depend on the length above BigBird's minimum
MODELS = {'bigbird_crime_and_punishment': 'BigBirdLM',
          'reformer_crime_and_punishment': 'ReformerLM',
          'performer_crime_and_punishment': 'PerformerLM'}


def kernel_calls(name, compute_dtype):
  gin.clear_config()
  trainer.parse_config([rl_free_configs.path(name)], [f'{MODELS[name]}.max_len = {LENGTH}'])
  model = gin.query_parameter('train.model').scoped_configurable_fn(mode='train')
  gin.clear_config()
  tokens = jnp.ones((1, LENGTH), jnp.int32)
  weights, state = model.init(jax.ShapeDtypeStruct(tokens.shape, jnp.int32), rng=jax.random.key(0))
  optimizer = optimizers.Adam(1e-4)
  step = make_train_step(model, tl.CrossEntropyLoss(), optimizer, compute_dtype=compute_dtype)
  data = (tokens, tokens, jnp.ones(tokens.shape, jnp.float32))
  with mock.patch('jax.default_backend', return_value='gpu'):
    jaxpr = jax.make_jaxpr(step)(weights, state, optimizer.init(weights), data, jax.random.key(1))
  return str(jaxpr).count('pallas_call')


@pytest.mark.parametrize('name', sorted(MODELS))
def test_the_novel_configs_attention_runs_on_the_kernels_on_a_gpu(name):
  assert kernel_calls(name, jnp.bfloat16) > 0


def test_in_float32_the_same_config_keeps_the_xla_path():
  assert kernel_calls('bigbird_crime_and_punishment', jnp.float32) == 0
