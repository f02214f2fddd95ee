# session 68, call 3: gath rebased on dkvs (LSH's kernels read rows through the sort order,
# no sorted copies; on the dk/dv kernel that writes the key scale's gradient itself) A/B
# against main (ones + dkvt + dkvs), then the GPU suite on the working tree (= the gath tree).
# Pack first: .venv/bin/python benchmarks/ab_trees.py pack .data/trees_gath main=<main> gath=<gath>
T0=$SECONDS
LIMIT=${LIMIT:-590}; TAG=${TAG:-c3}
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu_$TAG.txt
timeout 120 python benchmarks/ab_trees.py run .data/trees_gath --timeout_s 55 -- python benchmarks/attention_gpu.py --causal causal --kinds lsh_pallas block_sparse_pallas --lengths 4096 16384 65536 --budget_s 0.4 > $OUT/ab_gath.txt 2>&1; echo "exit $?" >> $OUT/ab_gath.txt
grep '^==\|^|\|exit\|rror' $OUT/ab_gath.txt | grep -v -- '---\|direction'; echo "t=$((SECONDS-T0))"
D=$(( LIMIT - 20 - (SECONDS-T0) )); echo "suite D=$D"
PYTHONUNBUFFERED=1 python benchmarks/gpu_suite.py --workers 6 --deadline_s $D --steps_scale 0.5 --out /tmp/suite > /tmp/suite.log 2>&1
tail -n 22 /tmp/suite.log; cp /tmp/suite/summary.md $OUT/suite_summary_$TAG.md
tar czf $OUT/suite_logs_$TAG.tgz -C /tmp suite suite.log; echo "t=$((SECONDS-T0))"
