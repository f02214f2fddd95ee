# prepared in session 69 for the next lease (one call, ~590 s; any GPU kind): 4004038 (LSH's
# signed_argmax in one reduction; reverted in c7084e2 until measured) A/B against main, both
# directions (main, then argmax), then the GPU suite on the working tree (= argmax).
# First (here): reapply it on top of main (`git revert c7084e2`, its own commit) so that the
# working tree is the argmax tree, then pack both:
#   .venv/bin/python benchmarks/ab_trees.py pack .data/trees_next main=HEAD~1 argmax=HEAD
# Expected from RESULTS 53's HLO: about 0.08 ms of the 64K layer (4.5 ms) and five launches
# at 4K. Keep the reapply only if every 64K row is at or below main's and the suite is
# green (else revert it again); record either way as the next RESULTS section.
T0=$SECONDS
LIMIT=${LIMIT:-590}
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu_next.txt
timeout 150 python benchmarks/ab_trees.py run .data/trees_next --timeout_s 70 -- python benchmarks/attention_gpu.py --causal causal bidirectional --kinds lsh_pallas --lengths 4096 16384 65536 --budget_s 0.3 > $OUT/ab_argmax.txt 2>&1; echo "exit $?" >> $OUT/ab_argmax.txt
grep '^==\|^| [cb]\|^exit\|rror' $OUT/ab_argmax.txt; echo "t=$((SECONDS-T0))"
D=$(( LIMIT - 30 - (SECONDS-T0) )); echo "suite D=$D"
PYTHONUNBUFFERED=1 python benchmarks/gpu_suite.py --workers 6 --deadline_s $D --steps_scale 0.5 --out /tmp/suite > /tmp/suite.log 2>&1
tail -n 22 /tmp/suite.log; cp /tmp/suite/summary.md $OUT/suite_summary_next.md
tar czf $OUT/suite_logs_next.tgz -C /tmp suite suite.log; echo "t=$((SECONDS-T0))"
