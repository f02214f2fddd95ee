# session 62 call 2 (session 61 c3, plus the landed causal FAVOR+ profile at 64K): ReformerLM on one 2^20-token sequence (goal <= 1.5 s); then, at 4K causal, cuDNN and FAVOR+ with XLA's
# command buffers as they are by default, widened to every kind of op with no minimum size, and off
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu3.txt
timeout 240 python benchmarks/models_gpu.py reformer_long --lengths 1048576 --reps 3 --out $OUT/reformer_long3.json > $OUT/reformer_long3.txt 2>&1; echo "exit $?" >> $OUT/reformer_long3.txt
grep '^|\|exit\|rror' $OUT/reformer_long3.txt; echo "t=$((SECONDS-T0))"
L="--lengths 4096 --causal causal --budget_s 0.5 --kinds cudnn favor favor_keep lsh_pallas block_sparse_pallas"
(for F in "" "--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN --xla_gpu_graph_min_graph_size=1" "--xla_gpu_enable_command_buffer="; do
  echo "== XLA_FLAGS='$F'"; XLA_FLAGS="$F" timeout 80 python benchmarks/attention_gpu.py $L 2>&1 | grep '^|\|rror'; done) > $OUT/cmdbuf3.txt
cat $OUT/cmdbuf3.txt; echo "t=$((SECONDS-T0))"
[ $((SECONDS-T0)) -lt 480 ] && timeout 90 python benchmarks/profile_gpu.py attention --kind favor --length 65536 --causal --top 20 2>&1 | tail -32 > $OUT/profile2.txt
cat $OUT/profile2.txt; echo "t=$((SECONDS-T0))"
