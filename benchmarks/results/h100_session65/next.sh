# prepared in session 65 for the next lease (not run): what section 49 left open.
# 1. The feature kernels' tile at TF32 dots (rows 64 x features 64 never measured;
#    a setting compiles in 55-68 s, so give each 150 s), then the layer at 64K for the best.
# 2. The optimized HLO's largest fusions of the 64K causal layer (0.70 ms of fusions, 0.31 of
#    them transposes, in section 49's profile).
# 3. Which kernel makes the split projection dots' gradients worse (section 49: dx 1.19e-2
#    against 6.3e-3 with TF32): precision.py --kernels at 16K (both modes, then the forward
#    kernels in one and the query / key / both gradient kernels in the other).
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
timeout 300 python benchmarks/favor_feature_tune.py --rows 64 --features 64 128 --warps 4 --dots tf32 --setting_timeout_s 150 --layer_lengths 65536 --top 1 --out $OUT/feature_tune.json > $OUT/feature_tune.txt 2>&1; echo "exit $?" >> $OUT/feature_tune.txt
cat $OUT/feature_tune.txt; echo "t=$((SECONDS-T0))"
XLA_FLAGS="--xla_dump_to=/tmp/dump --xla_dump_hlo_as_text" timeout 50 python benchmarks/attention_gpu.py --causal causal --kinds favor --lengths 65536 --budget_s 0.05 > /dev/null 2>&1
python benchmarks/results/h100_session65/fusions.py /tmp/dump 24 > $OUT/fusions.txt 2>&1; head -c 2500 $OUT/fusions.txt; echo "t=$((SECONDS-T0))"
timeout 170 python benchmarks/results/h100_session65/precision.py 16384 --kernels > $OUT/precision.txt 2>&1; cat $OUT/precision.txt | grep -v Warning | tail -10; echo "t=$((SECONDS-T0))"
