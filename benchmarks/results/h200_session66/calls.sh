# session 66, H200 lease (one start, six calls; the later five typed straight into `run`,
# recorded here). Call 1 is c1.sh (A/B base / diag / seqmaj, then the GPU suite on seqmaj).
# Call 2: seqmaj without diag (the working tree after reverting 29490a4) against base,
# bracketed, LSH layer at 64K and 16K causal:
source .data/setup.sh; timeout 300 python benchmarks/ab_trees.py run .data/trees --bracket --timeout_s 70 -- python benchmarks/attention_gpu.py --causal causal --kinds lsh_pallas --lengths 65536 16384 --budget_s 0.6 > $OUT/ab_c2.txt 2>&1
# Call 3: every kind on main's kernels (both changes reverted), both directions, back to back:
source .data/setup.sh; timeout 280 python benchmarks/attention_gpu.py --causal causal bidirectional --kinds cudnn lsh_pallas favor block_sparse_pallas --lengths 4096 16384 65536 --budget_s 0.5 --out $OUT/b2b_c3.json > $OUT/b2b_c3.txt 2>&1
# Call 4: the largest fusions of the causal FAVOR+ layer's optimized HLO at 64K:
source .data/setup.sh; XLA_FLAGS="--xla_dump_to=/tmp/dump --xla_dump_hlo_as_text" timeout 60 python benchmarks/attention_gpu.py --causal causal --kinds favor --lengths 65536 --budget_s 0.05 > /dev/null 2>&1; python benchmarks/results/h100_session65/fusions.py /tmp/dump 24 > $OUT/fusions_favor_c4.txt 2>&1
# Call 5: the LSH kernels' (num_warps, num_stages), all three kernels alike, at 64K:
source .data/setup.sh; timeout 180 python benchmarks/lsh_kernel_gpu.py --tune 65536 --warps_stages 4 2 8 2 4 3 8 3 2 2 > $OUT/lsh_tune_c5.txt 2>&1
# Call 6: the bare kernels (flash, block-sparse, LSH) at 16K and 64K, both directions:
source .data/setup.sh; timeout 140 python benchmarks/attention_gpu.py --causal causal bidirectional --kinds flash-core block_sparse-core lsh-core --lengths 16384 65536 --budget_s 0.5 --out $OUT/cores_c6.json > $OUT/cores_c6.txt 2>&1
