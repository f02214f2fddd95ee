# prepared in session 67 for the next lease (not run: every start was refused). Call 1.
# Pack the trees first, here (two folders: each A/B runs only the trees its kinds tell apart):
#   .venv/bin/python benchmarks/ab_trees.py pack .data/trees_favor main=HEAD ones=468f575
#   .venv/bin/python benchmarks/ab_trees.py pack .data/trees_sparse main=HEAD dkvt=66379dd dkvs=aa6041a gath=dbf5265 gseq=b7a26e5
# 1. Causal FAVOR+: ones (468f575, reverted by d8b57bf): no [v, 1] concatenation (section
#    50's two 64 MiB slice copies of v gone, expected 0.05-0.08 ms at 64K).
# 2. LSH and block-sparse, each against main: dkvt (66379dd, reverted by 6fd85dc): the sparse
#    dk/dv kernel on transposed tiles; dkvs (aa6041a, on dkvt; reverted by c566837 and
#    52fa3e3): LSH's key-scale gradient made in the dk/dv kernel (no einsum re-reading the
#    sorted q, ~0.24 ms); gath (dbf5265): LSH's kernels read rows through the sort order and
#    write results back at the rows' positions, so no sorted copy and no permutation back
#    (section 45's 0.85 ms of transposes and gathers around the sort, H100); gseq (b7a26e5 =
#    1ed29dc + a benchmark's signature): gath sequence-major (the head transposes cancel).
#    gath and gseq are reverted by c44aace (reapply: git revert c44aace); dkvt/dkvs conflict
#    with them in sparse_kernel.py: a winner of each pair is rebased by hand.
# 3. The feature kernels at 256 rows a program (a program of 64 rows loads the whole float32
#    projection, 64 KiB, per pass: more bytes from L2 than its rows' own), bare and then the
#    causal FAVOR+ layer at 64K for the default and 256 rows (a setting is a module constant).
# A winner is reapplied and the GPU suite run on it (suite.sh, a call of its own).
T0=$SECONDS
LIMIT=${LIMIT:-590}
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
timeout 100 python benchmarks/ab_trees.py run .data/trees_favor --timeout_s 45 -- python benchmarks/attention_gpu.py --causal causal --kinds favor --lengths 4096 16384 65536 --budget_s 0.4 > $OUT/ab_favor.txt 2>&1; echo "exit $?" >> $OUT/ab_favor.txt
timeout 260 python benchmarks/ab_trees.py run .data/trees_sparse --timeout_s 50 -- python benchmarks/attention_gpu.py --causal causal --kinds lsh_pallas block_sparse_pallas --lengths 4096 16384 65536 --budget_s 0.4 > $OUT/ab_sparse.txt 2>&1; echo "exit $?" >> $OUT/ab_sparse.txt
cat $OUT/ab_favor.txt $OUT/ab_sparse.txt | grep '^==\|^|\|exit\|rror' | grep -v -- '---\|direction'; echo "t=$((SECONDS-T0))"
R=$(( LIMIT - 10 - (SECONDS-T0) )); [ $R -gt 120 ] && { timeout $R python benchmarks/favor_feature_tune.py --rows 256 --features 64 --warps 4 --dots tf32 --setting_timeout_s 150 --layer_lengths 65536 --top 1 --out $OUT/feature_tune.json > $OUT/feature_tune.txt 2>&1; echo "exit $?" >> $OUT/feature_tune.txt; tail -4 $OUT/feature_tune.txt; echo "t=$((SECONDS-T0))"; }
