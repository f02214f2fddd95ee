"""Causal FAVOR+ layer (attention_gpu.py's `favor`), recompute_features True (default) vs
False, alternating, at the given lengths: ms and GiB per row (session 57 call 1).

  python benchmarks/results/h100_session57/norecompute.py 16384 65536
"""
import sys

sys.path.insert(0, 'benchmarks')
import plait.layers as tl  # pylint: disable=g-import-not-at-top
from attention_gpu import D_MODEL, N_HEADS, layer_step, measure  # pylint: disable=g-import-not-at-top

for length in map(int, sys.argv[1:]):
  for recompute in (True, False, True):
    layer = tl.CausalFavorAttention(D_MODEL, N_HEADS, nb_features=256, mode='eval',
                                    chunk_size=128, recompute_features=recompute)
    ms, gib = measure(*layer_step(layer, length), 0.4)
    print(f'| {length} | recompute_features={recompute} | {ms:.2f} ms | {gib:.2f} GiB |',
          flush=True)
