# prepared in session 63 for the next lease (not run): what section 47 left.
# 1. PerformerLM's training step on section 47's feature kernels against TransformerLM (8K x 8
#    and 32K x 2; section 45: 0.84x / 2.17x the Transformer's tokens/s).
# 2. The feature kernels' rows / warps alone (section 47's sweep printed nothing in 120 s).
# 3. Head width 80 (padded to 128) and both directions for the sparse kernels (RESULTS 46
#    timed causal 48 / 96 only).
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
timeout 200 python benchmarks/models_gpu.py long_lm --only TransformerLM PerformerLM 'PerformerLM(keep)' --out $OUT/long_lm.json > $OUT/long_lm.txt 2>&1; echo "exit $?" >> $OUT/long_lm.txt
grep '^|\|exit\|rror' $OUT/long_lm.txt; echo "t=$((SECONDS-T0))"
timeout 200 python benchmarks/favor_feature_tune.py --rows 64 128 --features 128 --warps 4 8 --layer_lengths --out $OUT/feature_tune.json > $OUT/feature_tune.txt 2>&1; echo "exit $?" >> $OUT/feature_tune.txt
cat $OUT/feature_tune.txt | tail -8; echo "t=$((SECONDS-T0))"
[ $((SECONDS-T0)) -lt 450 ] && timeout 140 python benchmarks/head_width_gpu.py --widths 80 --causal causal bidirectional --length 16384 > $OUT/head_width80.txt 2>&1; echo "exit $?" >> $OUT/head_width80.txt
grep '^|\|exit\|rror' $OUT/head_width80.txt; echo "t=$((SECONDS-T0))"
