"""A 1-layer ReformerLM with LSH attention learns the duplication task (Reformer, Table 2).

Tiny CPU version of benchmarks/duplication_table.py (whose training loop it uses): length 32,
d_model 64, trained with LSH-4 (4 chunks of 8, 8 buckets); each copy has 15 random symbols
from a vocabulary of 31 (chance 1/31 = 3.2%). With learned positions initialised at 0.02 (the
old default) the same run stays at chance: the positional part of each query is drowned by the
token part, so LSH buckets by content and never brings position i - 15 into i's chunk.
"""
import importlib.util
import pathlib

import pytest

_SCRIPT = pathlib.Path(__file__).resolve().parents[2] / 'benchmarks' / 'duplication_table.py'
_spec = importlib.util.spec_from_file_location('duplication_table', _SCRIPT)
duplication_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(duplication_table)

CFG = dict(length=32, vocab_size=32, d_model=64, d_ff=128, n_heads=2, chunk_len=8,
           n_buckets=8, batch_size=16, lr=4e-3)
CHANCE = 1 / (CFG['vocab_size'] - 1)


def test_lsh4_model_learns_to_copy_the_second_half():
  # Seeded and deterministic: accuracy jumps from ~chance to ~1 between steps 50 and 100 (a
  # phase change, typical of this task; seeds 0-2 all do), so 150 steps is short but not flaky.
  # With the old 0.02 initialisation of the positions it is still at chance at step 200.
  weights, _, _ = duplication_table.train('lsh4', CFG, steps=150, seed=0)
  for kind in ('lsh4', 'full'):  # LSH-trained weights also work with exact attention.
    accuracy = duplication_table.evaluate(weights, kind, CFG, n_batches=4)
    assert accuracy > 0.95, (kind, accuracy, CHANCE)
