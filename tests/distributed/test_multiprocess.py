"""Two processes on localhost join one JAX job (CPU, 2 devices each) and train together."""
import subprocess
import sys

import numpy as np

from tests.distributed import helpers, worker


def test_two_processes_initialize_and_train_data_parallel():
  port = helpers.free_port()
  procs = [subprocess.Popen(
      [sys.executable, '-m', 'tests.distributed.worker', 'multiprocess', str(i), str(port)],
      cwd=helpers.REPO, env=helpers.device_env(2), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  results = []
  for proc in procs:
    try:
      stdout, stderr = proc.communicate(timeout=300)
    finally:
      if proc.poll() is None:
        proc.kill()
    assert proc.returncode == 0, stdout[-3000:] + stderr[-6000:]
    results.append(helpers.last_json(stdout))
  for i, r in enumerate(results):
    assert r['joined'] and r['process_index'] == i and r['process_count'] == 2
    assert r['devices'] == 4 and r['local_devices'] == 2
    assert r['gathered'] == [1, 11]
    assert r['mesh'] == {'data': 4, 'seq': 1, 'model': 1}
  # Both processes see the same global loss, equal to one device on the whole batch.
  assert results[0]['losses'] == results[1]['losses']
  reference = worker.loop('tiny', None, data=worker.Tokens(batch=8))
  reference.run(2)
  np.testing.assert_allclose(results[0]['losses'], worker.losses(reference), rtol=2e-6)
