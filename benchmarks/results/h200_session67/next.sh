# prepared in session 67 for the next lease (not run: every start was refused). Call 1. Pack the trees first, here:
#   .venv/bin/python benchmarks/ab_trees.py pack .data/trees main=HEAD ones=468f575 dkvt=66379dd dkvs=aa6041a
# 1. Three changes written in session 66 and reverted until measured, A/B against main (each
#    on its own), back to back: ones (468f575, reverted by d8b57bf): causal FAVOR+ without
#    the [v, 1] concatenation (section 50's two 64 MiB slice copies of v gone, expected
#    0.05-0.08 ms at 64K); dkvt (66379dd, reverted by 6fd85dc): the sparse dk/dv kernel on
#    transposed tiles (no transposed dot operand; block-sparse and LSH); dkvs (aa6041a, on
#    dkvt; reverted by c566837, then dkvt by 52fa3e3): with shared QK (LSH) the dk/dv
#    kernel also writes the key scale's gradient and dk * key_scale (no einsum re-reading
#    the sorted q, ~0.24 ms in docs/attention.md's 64K profile). A winner is reapplied
#    (git revert of its reverts) and the GPU suite run on it (a call of its own).
# 2. XLA command buffers at 4K, now that back-to-back times leave the host round trip out
#    (section 45's blocked rows scattered up to 2x between calls): every kind, both
#    directions, flags unset and with command buffers for fusions, cuBLAS and custom calls.
# 3. (session 67: before 2, rows changed) the feature kernels at 128 and 256 rows a program
#    (each program loads the whole (256, 64) float32 projection per pass: at 64 rows that is
#    more bytes from L2 than the rows' own reads and writes), then the layer at 64K for the
#    default and the fastest.
# 2 runs last, with what time is left.
T0=$SECONDS
LIMIT=${LIMIT:-600}
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
timeout 300 python benchmarks/ab_trees.py run .data/trees --timeout_s 70 -- python benchmarks/attention_gpu.py --causal causal --kinds favor lsh_pallas block_sparse_pallas --lengths 4096 16384 65536 --budget_s 0.4 > $OUT/ab.txt 2>&1; echo "exit $?" >> $OUT/ab.txt
grep '^==\|^|\|exit\|rror' $OUT/ab.txt | grep -v -- '---\|direction'; echo "t=$((SECONDS-T0))"
R=$(( LIMIT - 10 - (SECONDS-T0) )); [ $R -gt 120 ] && { timeout $R python benchmarks/favor_feature_tune.py --rows 128 256 --features 64 --warps 4 --dots tf32 --setting_timeout_s 150 --layer_lengths 65536 --top 1 --out $OUT/feature_tune.json > $OUT/feature_tune.txt 2>&1; echo "exit $?" >> $OUT/feature_tune.txt; tail -5 $OUT/feature_tune.txt; echo "t=$((SECONDS-T0))"; }
[ $(( LIMIT - (SECONDS-T0) )) -gt 100 ] && {
for F in "" "--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL --xla_gpu_graph_min_graph_size=1"; do
  echo "== XLA_FLAGS=$F"; XLA_FLAGS="$F" timeout 90 python benchmarks/attention_gpu.py --causal causal bidirectional --kinds cudnn lsh_pallas favor block_sparse_pallas --lengths 4096 --budget_s 0.5 2>&1 | grep '^|\|rror'
done > $OUT/cmdbuf.txt 2>&1; grep -v -- '---\|direction' $OUT/cmdbuf.txt; echo "t=$((SECONDS-T0))"
}
