"""Session 47's CPU runs: pathfinder_dots.main with LSH's shared-QK keys changed by a patch.

  python benchmarks/results/cpu_session47/variant.py MODE [pathfinder_dots.py arguments]

Run from the repository root. MODE: 'plain' (as shipped), 'unnorm' (the keys are the
queries themselves, not rescaled to unit RMS: logits q_i . q_j / sqrt(d)), 'lra' (LRA's
Reformer attention logits: keys = queries, logits q_i . q_j * sqrt(d) instead of / sqrt(d),
and a token attends to itself like to any other key). The patch reaches LSH's XLA paths
(chunked.py, blocked.py), which is what the CPU runs. Branch lsh-raw-keys makes 'unnorm' an
option (`--set normalize_keys=False`).
"""
import sys

sys.path.insert(0, 'benchmarks')
import pathfinder_dots  # pylint: disable=g-import-not-at-top,wrong-import-position
import plait.layers.attention.lsh.blocked as blocked  # pylint: disable=g-import-not-at-top
import plait.layers.attention.lsh.chunked as chunked  # pylint: disable=g-import-not-at-top
import plait.layers.attention.lsh.window as window  # pylint: disable=g-import-not-at-top

mode = sys.argv.pop(1)
if mode == 'unnorm':
  keys = lambda q, epsilon=1e-6: q
elif mode == 'lra':
  keys = lambda q, epsilon=1e-6: q * q.shape[-1]   # window.py's / sqrt(d) becomes * sqrt(d)
  window.SELF_PENALTY = 0.0
else:
  assert mode == 'plain', mode
  keys = None
if keys is not None:
  chunked.shared_qk_keys = blocked.shared_qk_keys = keys
print('variant', mode, flush=True)
pathfinder_dots.main()
