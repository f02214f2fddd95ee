# session 58 call 2 (same lease): the product kernels' knobs one at a time; recompute_features False vs True; the feature
# kernels' first tuning sweep; a 64K profile of the tree's causal FAVOR+
T0=$SECONDS
source .data/setup.sh
(cd benchmarks && timeout 170 python favor_product_tune.py) > $OUT/product_tune2.log 2>&1
tail -n 25 $OUT/product_tune2.log; echo "t=$((SECONDS-T0))"
timeout 80 python benchmarks/attention_gpu.py --lengths 16384 65536 --causal causal --budget_s 0.4 --kinds cudnn favor favor_keep 2>&1 | grep '^|' > $OUT/keep2.txt
cat $OUT/keep2.txt; echo "t=$((SECONDS-T0))"
(cd benchmarks && timeout 170 python favor_feature_tune.py --layer_lengths 65536 --top 1) > $OUT/feature_tune2.log 2>&1
tail -n 25 $OUT/feature_tune2.log; echo "t=$((SECONDS-T0))"
timeout $((585-(SECONDS-T0))) python benchmarks/profile_gpu.py attention --length 65536 --causal --top 24 --kind favor 2>&1 | grep '^|\|wall' > $OUT/profile2.log
cat $OUT/profile2.log; echo "t=$((SECONDS-T0))"
