# prepared in session 68 for the next lease (one call, ~400 s; any GPU kind).
# 1. The whole back-to-back table of docs/attention.md (section 50's, H200) on main's kernels
#    after section 52's four changes, cuDNN in the same call (the ratios it states).
# 2. A profile of the causal LSH layer at 64K with rows read through the sort order: where
#    its 4.5 ms go now that the sorted copies are gone (section 45's profile: kernels 2.79,
#    glue around the sort 0.85, GEMMs 0.53; the layer barely moved, section 52).
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu_next.txt
timeout 280 python benchmarks/attention_gpu.py --causal causal bidirectional --kinds cudnn lsh_pallas favor block_sparse_pallas --lengths 4096 16384 65536 --budget_s 0.5 --out $OUT/b2b.json > $OUT/b2b.txt 2>&1; echo "exit $?" >> $OUT/b2b.txt
grep '^|\|exit\|rror' $OUT/b2b.txt | grep -v -- '---\|^| direction'; echo "t=$((SECONDS-T0))"
timeout 150 python benchmarks/profile_gpu.py attention --kind lsh_pallas --causal --length 65536 --top 30 > $OUT/profile_lsh.txt 2>&1; echo "exit $?" >> $OUT/profile_lsh.txt
tail -n 40 $OUT/profile_lsh.txt; echo "t=$((SECONDS-T0))"
