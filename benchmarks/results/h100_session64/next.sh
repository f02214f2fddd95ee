# prepared in session 64 for the next lease (not run). Before it, here:
#   git cherry-pick 5e042db            # the merged states kernel (one per product; reverted in 2fd67fd)
#   python benchmarks/ab_trees.py pack .data/trees main=HEAD~1
# then this call: the causal layer A/B (tree = merged states, first and last, against main),
# the GPU suite on the tree (D from what is left), the feature kernels' rows / tile one
# setting per Python (favor_feature_tune.py now survives a setting that does not compile).
# Keep 5e042db if the layer is no slower at 4K-64K and the suite is green; else revert again.
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
timeout 200 python benchmarks/ab_trees.py run .data/trees --bracket --timeout_s 60 -- python benchmarks/attention_gpu.py --causal causal --kinds cudnn favor --lengths 4096 16384 65536 --budget_s 0.4 > $OUT/ab.txt 2>&1; echo "exit $?" >> $OUT/ab.txt
grep '^==\|^|\|exit\|rror' $OUT/ab.txt; echo "t=$((SECONDS-T0))"
D=$(( 560 - (SECONDS-T0) - 30 )); [ $D -gt 420 ] && D=420; echo "suite D=$D"
PYTHONUNBUFFERED=1 python benchmarks/gpu_suite.py --workers 6 --deadline_s $D --steps_scale 0.5 --out /tmp/suite > /tmp/suite.log 2>&1
tail -n 30 /tmp/suite.log; cp /tmp/suite/summary.md $OUT/suite_summary.md
tar czf $OUT/suite_logs.tgz -C /tmp suite suite.log; echo "t=$((SECONDS-T0))"
# A second call (about 400 s) for the sweep:
#   source .data/setup.sh; timeout 500 python benchmarks/favor_feature_tune.py --rows 32 128 \
#     --features 64 128 --warps 4 --setting_timeout_s 120 --layer_lengths 65536 --top 1 \
#     --out $OUT/feature_tune.json
