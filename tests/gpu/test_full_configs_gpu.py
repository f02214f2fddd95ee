"""The GPU suite (`pytest -m gpu`, or `python benchmarks/gpu_suite.py`): every full config as
users run it on one GPU, not shrunk: plait-train for a few hundred steps with evaluation,
checkpoints, kill -9 and resume, then plait-decode from the best checkpoint (tests/user_paths.py).
Skipped where no GPU is present. $PLAIT_GPU_SUITE_STEPS scales the step counts (e.g. 0.5).
"""
import json
import os
import re
import time

import jax
import pytest

from tests import user_paths

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(jax.default_backend() != 'gpu', reason='needs a GPU')]

# Steps per config: a few hundred where a step is fast; fewer for the long-sequence ones
# (ReformerLM on 2^19 tokens ~0.35 s a step, ImageNet64 12 layers of d_model 1024).
STEPS = {'reformer_crime_and_punishment': 100, 'reformer_imagenet64': 20}


@pytest.mark.parametrize('name', user_paths.LM_FULL)
def test_full_config_on_one_gpu_trains_resumes_and_decodes(name, tmp_path):
  # ImageNet needs a download: its full model trains on the offline photos at 64x64 (the
  # TFDS path itself is host-side code, covered on mock data by the CPU user-path test).
  images = ["image_lm_inputs.source = 'offline'"] if 'imagenet' in name else []
  _train_resume_decode(name, tmp_path, images, name)


def test_rotary_transformer_lm_on_one_gpu_trains_resumes_and_decodes(tmp_path):
  """The TransformerLM config with rotary positions (cuDNN attention on rotated q and k;
  plait-decode continues the positions from the prompt)."""
  _train_resume_decode('transformer_lm_crime_and_punishment', tmp_path,
                       ["TransformerLM.positional = 'rotary'"],
                       'transformer_lm_crime_and_punishment (rotary)')


def _train_resume_decode(name, tmp_path, extra, label):
  scale = float(os.environ.get('PLAIT_GPU_SUITE_STEPS', '1'))
  steps = max(4, 2 * round(scale * STEPS.get(name, 200) / 2))
  text = 'imagenet' not in name and 'duplication' not in name
  start = time.perf_counter()
  outputs = user_paths.check_user_path(
      name, str(tmp_path), steps=steps, every=steps // 2, shrink=False, extra=extra,
      decode_prompt='Raskolnikov ' if text else None, exact=False, mock_tfds=False)
  _record({'config': label, 'steps': steps, 'wall_s': round(time.perf_counter() - start, 1),
           'compile_s': _compile_seconds(outputs['reference']),
           'compile_resumed_s': _compile_seconds(outputs['resumed']),
           'eval_loss': {step: r['loss'] for step, r in outputs['eval'].items()},
           'device': jax.devices()[0].device_kind})


def _compile_seconds(log):
  """{'train step': s, 'eval step': s} from the Loop's 'compiled the ... in X s.' lines."""
  return {m[1]: float(m[2]) for m in re.finditer(r'compiled the (\w+ step) in ([\d.]+) s', log)}


def _record(row):
  """Appends a JSON line to $PLAIT_GPU_SUITE_OUT (benchmarks/gpu_suite.py collects them)."""
  path = os.environ.get('PLAIT_GPU_SUITE_OUT')
  if path:
    with open(path, 'a') as f:
      f.write(json.dumps(row) + '\n')
