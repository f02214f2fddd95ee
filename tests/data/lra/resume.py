"""A shared check for the LRA sources: a restored pipeline continues exactly."""
import numpy as np


def assert_resumes_exactly(make, n_before, n_after):
  """Reads n_before batches, saves the state; a fresh pipeline restored to it gives the next
  n_after batches' inputs exactly."""
  stream = make()
  for _ in range(n_before):
    next(stream)
  state = stream.get_state()
  expected = [next(stream) for _ in range(n_after)]
  resumed = make()
  resumed.set_state(state)
  for batch in expected:
    np.testing.assert_array_equal(next(resumed)[0], batch[0])
