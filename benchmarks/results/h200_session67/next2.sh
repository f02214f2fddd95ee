# prepared in session 67 for the next lease (not run). Call 2, on the warm machine after
# next.sh: XLA command buffers, back to back, at 4K and at 64K. Section 45's 64K block-sparse
# profile (H100) had 0.25 ms of gaps between the step's 42 kernels and 0.31 ms of small
# fusions beside 0.85 ms of kernels and 0.60 of GEMMs: if a graph takes the launch gaps out,
# the 1.75 ms layer (H200, section 50) nears the 1.5 ms goal without a kernel change.
# XLA_FLAGS belong to the user: a gain is reported and documented (docs/attention.md,
# "Picking a kind"), not set by plait. Then, with the time left, the feature kernels at 128
# rows (next.sh timed 256).
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu2.txt
for F in "" "--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL --xla_gpu_graph_min_graph_size=1"; do
  echo "== XLA_FLAGS=$F"; XLA_FLAGS="$F" timeout 200 python benchmarks/attention_gpu.py --causal causal bidirectional --kinds cudnn lsh_pallas favor block_sparse_pallas --lengths 4096 65536 --budget_s 0.5 2>&1 | grep '^|\|rror'
done > $OUT/cmdbuf2.txt 2>&1; grep -v -- '---\|direction' $OUT/cmdbuf2.txt; echo "t=$((SECONDS-T0))"
R=$(( 580 - (SECONDS-T0) )); [ $R -gt 150 ] && { timeout $R python benchmarks/favor_feature_tune.py --rows 128 --features 64 --warps 4 --dots tf32 --setting_timeout_s 150 --layer_lengths --out $OUT/feature_tune2.json > $OUT/feature_tune2.txt 2>&1; tail -3 $OUT/feature_tune2.txt; }
