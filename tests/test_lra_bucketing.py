"""User path of length-bucketed LRA training: the full ListOps Transformer config shrunk by sizes,
with `bucket_lengths`, trains on batches of several lengths, and a run killed after a
checkpoint resumes to the uninterrupted run's losses, bit for bit (the buckets' waiting
examples are part of the data state)."""
import subprocess

import numpy as np

from plait.data.lra import lra_listops_inputs
from tests import user_paths

BUCKETS = (40, 60, 100)   # the tiny ListOps config's expressions: 20 < length < 100
BINDINGS = [f'lra_listops_inputs.bucket_lengths = {BUCKETS}',
            'eval/lra_listops_inputs.bucket_lengths = None']


def test_bucketed_listops_trains_on_several_lengths_and_resumes_exactly(tmp_path,
                                                                       user_path_cache):
  name, steps, every = 'lra_listops_transformer', 6, 3
  overrides = user_paths.size_overrides(name)
  assert {'lra_listops_inputs.max_length = 100', 'lra_listops_inputs.batch_size = 8'} <= set(
      overrides)
  stream = lra_listops_inputs(batch_size=8, max_length=100, min_length=20,
                              bucket_lengths=BUCKETS)()
  assert len({next(stream)[0].shape[1] for _ in range(steps)}) >= 2   # the steps' batches
  env = user_paths.environment(user_path_cache)
  argv = lambda out: user_paths.train_argv(name, str(out), steps, every, extra=BINDINGS)
  user_paths.run_train(argv(tmp_path / 'reference'), env)
  resumed = tmp_path / 'resumed'
  killed = user_paths.kill_after_checkpoint(argv(resumed), env, str(resumed), every)
  out = user_paths.run_train(argv(resumed), env)
  assert not killed or 'Resumed from the checkpoint at step' in out
  ref = user_paths.records(str(tmp_path / 'reference'), 'train')
  got = user_paths.records(str(resumed), 'train')
  assert sorted(ref) == sorted(got) == list(range(1, steps + 1))
  np.testing.assert_array_equal([got[s]['loss'] for s in ref], [ref[s]['loss'] for s in ref])
  assert "bucket_lengths = (40, 60, 100)" in (resumed / 'config.gin').read_text()


def test_buckets_bound_for_evaluation_too_are_one_message_and_nothing_written(tmp_path,
                                                                             user_path_cache):
  """gin's unscoped binding reaches the eval scope too: plait-train says how to bind it
  (exit 2, the CLI's bad-config code) before it makes the output directory."""
  argv = user_paths.train_argv('lra_listops_transformer', str(tmp_path / 'run'), 2, 1,
                               extra=BINDINGS[:1])
  done = subprocess.run(user_paths.command(argv), cwd=user_paths.REPO, capture_output=True,
                        text=True, timeout=300, env=user_paths.environment(user_path_cache),
                        check=False)
  assert done.returncode == 2, done.stderr[-2000:]
  assert "set eval/lra_listops_inputs.bucket_lengths = None" in done.stderr
  assert 'Traceback' not in done.stderr and not (tmp_path / 'run').exists()
