# session 65 call 1: causal FAVOR+ A/B at 4K/16K/64K: main (5dbd7e1), states (c479177: one
# states kernel per product) and the tree (states + the feature kernels' split projection
# dots, 8fd3e0a); then the feature kernels' projection dots swept (split / tf32 / single,
# bare kernels at 64K x 8 heads with the error against float32 XLA maps, and the layer at 64K);
# then PerformerLM's training step at 8K and 32K against TransformerLM.
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu_c1.txt
timeout 200 python benchmarks/ab_trees.py run .data/trees --bracket --timeout_s 60 -- python benchmarks/attention_gpu.py --causal causal --kinds cudnn favor --lengths 4096 16384 65536 --budget_s 0.4 > $OUT/ab_c1.txt 2>&1; echo "exit $?" >> $OUT/ab_c1.txt
grep '^==\|^|\|exit\|rror' $OUT/ab_c1.txt; echo "t=$((SECONDS-T0))"
timeout 230 python benchmarks/favor_feature_tune.py --rows 64 --features 128 --warps 4 --dots split tf32 single --setting_timeout_s 90 --layer_lengths 65536 --top 1 --out $OUT/feature_tune_c1.json > $OUT/feature_tune_c1.txt 2>&1; echo "exit $?" >> $OUT/feature_tune_c1.txt
cat $OUT/feature_tune_c1.txt; echo "t=$((SECONDS-T0))"
timeout $(( 575 - (SECONDS-T0) )) python benchmarks/models_gpu.py long_lm --only TransformerLM PerformerLM --out $OUT/long_lm_c1.json > $OUT/long_lm_c1.txt 2>&1; echo "exit $?" >> $OUT/long_lm_c1.txt
grep '^|\|exit\|rror' $OUT/long_lm_c1.txt; echo "t=$((SECONDS-T0))"
