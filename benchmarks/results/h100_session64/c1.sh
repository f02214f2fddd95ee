# session 64 call 1: causal FAVOR+ with the product's column pieces kept apart (tree) against
# main (3ef9c34) at 4K/16K/64K, then the GPU suite on the tree (covers 5a4bc3f's sparse_attention
# width too), then the 64K profile if time is left.
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu_c1.txt
timeout 200 python benchmarks/ab_trees.py run .data/trees --bracket --timeout_s 60 -- python benchmarks/attention_gpu.py --causal causal --kinds cudnn favor --lengths 4096 16384 65536 --budget_s 0.4 > $OUT/ab_c1.txt 2>&1; echo "exit $?" >> $OUT/ab_c1.txt
grep '^==\|^|\|exit\|rror' $OUT/ab_c1.txt; echo "t=$((SECONDS-T0))"
D=$(( 560 - (SECONDS-T0) - 75 )); [ $D -gt 420 ] && D=420; echo "suite D=$D"
PYTHONUNBUFFERED=1 python benchmarks/gpu_suite.py --workers 6 --deadline_s $D --steps_scale 0.5 --out /tmp/suite > /tmp/suite.log 2>&1
tail -n 30 /tmp/suite.log; cp /tmp/suite/summary.md $OUT/suite_summary_c1.md
tar czf $OUT/suite_logs_c1.tgz -C /tmp suite suite.log; echo "t=$((SECONDS-T0))"
[ $((SECONDS-T0)) -lt 500 ] && timeout $(( 570 - (SECONDS-T0) )) python benchmarks/profile_gpu.py attention --kind favor --length 65536 --causal --top 24 2>&1 | tail -36 > $OUT/profile_favor_64k_c1.txt
head -30 $OUT/profile_favor_64k_c1.txt; echo "t=$((SECONDS-T0))"
