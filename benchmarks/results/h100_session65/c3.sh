# session 65 call 3: causal FAVOR+ A/B at 4K/16K/64K: main (5dbd7e1), split (8fd3e0a: merged
# states + split projection dots) and the tree (+ the query max as the gradient kernel's
# residual); the layer's kernel path against its XLA path at default and highest precision,
# projection dots TF32 and split (precision.py); the GPU suite on the tree with the time left;
# then, if any is left (none was), the largest fusions of the 64K layer's optimized HLO.
T0=$SECONDS
LIMIT=${LIMIT:-600}   # the call's limit_s: the suite gets what is left of it
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu_c3.txt
timeout 150 python benchmarks/ab_trees.py run .data/trees --bracket --timeout_s 60 -- python benchmarks/attention_gpu.py --causal causal --kinds cudnn favor --lengths 4096 16384 65536 --budget_s 0.4 > $OUT/ab_c3.txt 2>&1; echo "exit $?" >> $OUT/ab_c3.txt
grep '^==\|^|\|exit\|rror' $OUT/ab_c3.txt | grep -v -- '---\|direction'; echo "t=$((SECONDS-T0))"
timeout 100 python benchmarks/results/h100_session65/precision.py 16384 > $OUT/precision_c3.txt 2>&1; echo "exit $?" >> $OUT/precision_c3.txt
cat $OUT/precision_c3.txt | grep -v Warning | tail -7; echo "t=$((SECONDS-T0))"
D=$(( LIMIT - 15 - (SECONDS-T0) )); [ $D -gt 420 ] && D=420; echo "suite D=$D"
PYTHONUNBUFFERED=1 python benchmarks/gpu_suite.py --workers 6 --deadline_s $D --steps_scale 0.5 --out /tmp/suite > /tmp/suite.log 2>&1
tail -n 22 /tmp/suite.log; cp /tmp/suite/summary.md $OUT/suite_summary_c3.md
tar czf $OUT/suite_logs_c3.tgz -C /tmp suite suite.log; echo "t=$((SECONDS-T0))"
[ $((LIMIT - (SECONDS-T0))) -gt 60 ] && { XLA_FLAGS="--xla_dump_to=/tmp/dump --xla_dump_hlo_as_text" timeout 50 python benchmarks/attention_gpu.py --causal causal --kinds favor --lengths 65536 --budget_s 0.05 > /dev/null 2>&1; python benchmarks/results/h100_session65/fusions.py /tmp/dump 24 > $OUT/fusions_c3.txt 2>&1; head -c 1500 $OUT/fusions_c3.txt; echo "t=$((SECONDS-T0))"; }
