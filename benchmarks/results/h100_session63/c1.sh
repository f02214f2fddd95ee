# session 63 call 1: causal FAVOR+ feature kernels reading q, k in their own dtype with the
# query max in a first pass (twopass, 427314d), the same with the query tiles held (hold), and
# the tree (b6401fc: twopass + the recompute keeps the keys' max) against main (3674d30): GPU
# checks on the tree, the causal layer A/B at 4K/16K/64K, a sweep of the bare feature kernels on the tree, its 64K profile.
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu_c1.txt
timeout 150 python benchmarks/favor_causal_gpu.py --lengths 4096 --check_length 16384 > $OUT/favor_checks_c1.log 2>&1; echo "exit $?" >> $OUT/favor_checks_c1.log
grep -i 'pass\|fail\|exit\|rror' $OUT/favor_checks_c1.log | tail -12; echo "t=$((SECONDS-T0))"
timeout 300 python benchmarks/ab_trees.py run .data/trees --bracket --timeout_s 60 -- python benchmarks/attention_gpu.py --causal causal --kinds cudnn favor --lengths 4096 16384 65536 --budget_s 0.4 > $OUT/ab_c1.txt 2>&1; echo "exit $?" >> $OUT/ab_c1.txt
grep '^==\|^|\|exit\|rror' $OUT/ab_c1.txt; echo "t=$((SECONDS-T0))"
timeout 120 python benchmarks/favor_feature_tune.py --rows 64 128 --features 128 256 --warps 4 8 --layer_lengths 65536 --top 1 --budget_s 0.3 --out $OUT/feature_tune_c1.json > $OUT/feature_tune_c1.txt 2>&1; echo "exit $?" >> $OUT/feature_tune_c1.txt
grep '^|\|exit\|rror' $OUT/feature_tune_c1.txt; echo "t=$((SECONDS-T0))"
[ $((SECONDS-T0)) -lt 510 ] && timeout 70 python benchmarks/profile_gpu.py attention --kind favor --length 65536 --causal --top 24 2>&1 | tail -36 > $OUT/profile_favor_64k_c1.txt
cat $OUT/profile_favor_64k_c1.txt; echo "t=$((SECONDS-T0))"
