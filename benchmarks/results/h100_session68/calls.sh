# session 68: the commands of calls 4-6 (short calls on the warm H100 after c3.sh; call 1 was
# results/h200_session67/next.sh, call 2 next2.sh, call 3 c3.sh).
# call 4: the gath tree against main again, LSH only, bracketed by the working tree (= gath)
timeout 150 python benchmarks/ab_trees.py run .data/trees_gath --bracket --timeout_s 45 -- python benchmarks/attention_gpu.py --causal causal --kinds lsh_pallas --lengths 16384 65536 --budget_s 0.4 > $OUT/ab_gath_bracket.txt 2>&1
# call 5: ReformerLM on one 2^20-token sequence, the working tree (= gath)
timeout 220 python benchmarks/models_gpu.py reformer_long --lengths 1048576 --reps 3 --out $OUT/reformer_long_c5.json > $OUT/reformer_long_c5.txt 2>&1
# call 6: the same, main and gath trees one after the other
timeout 200 python benchmarks/ab_trees.py run .data/trees_gath --timeout_s 95 -- python benchmarks/models_gpu.py reformer_long --lengths 1048576 --reps 3 > $OUT/reformer_long_ab_c6.txt 2>&1
