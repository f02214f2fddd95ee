"""A 1-layer ReformerLM with LSH attention learns the duplication task (Reformer, Table 2).

Tiny CPU version of benchmarks/duplication_table.py (whose training loop it uses): length 32,
d_model 32, LSH with 2 hashes; each copy has 15 random symbols from a vocabulary of 15 (chance
1/15 = 6.7%).
"""
import importlib.util
import pathlib

import pytest

_SCRIPT = pathlib.Path(__file__).resolve().parents[2] / 'benchmarks' / 'duplication_table.py'
_spec = importlib.util.spec_from_file_location('duplication_table', _SCRIPT)
duplication_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(duplication_table)

CFG = dict(length=32, vocab_size=16, d_model=32, d_ff=64, n_heads=2, chunk_len=8,
           n_buckets=8, batch_size=16, lr=5e-3)
CHANCE = 1 / (CFG['vocab_size'] - 1)


def test_lsh2_model_learns_to_copy_the_second_half():
  # Seeded and deterministic: accuracy jumps from ~chance to ~1 around step 350 (a phase
  # change, typical of this task), so 400 steps is short but not flaky.
  weights, _, _ = duplication_table.train('lsh2', CFG, steps=400, seed=0)
  accuracy = duplication_table.evaluate(weights, 'lsh2', CFG, n_batches=4)
  assert accuracy > 0.9, (accuracy, CHANCE)
