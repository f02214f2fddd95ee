# session 66 call 1 (device starts scarce: A/B and suite in one call): LSH A/B of base
# (7f8e422), diag (29490a4: the self penalty on the diagonal tiles only) and seqmaj (823d6e6:
# + sorted copies gathered from and the rounds combined sequence-major), with back-to-back
# times: LSH layer and cuDNN, causal 4K / 64K and bidirectional 64K; then the GPU suite on
# the tree (= seqmaj) with the time left (LIMIT: the call's limit_s).
T0=$SECONDS
LIMIT=${LIMIT:-600}
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu_c1.txt
AB='python benchmarks/attention_gpu.py --causal causal --kinds cudnn lsh_pallas --lengths 4096 65536 --budget_s 0.4; python benchmarks/attention_gpu.py --causal bidirectional --kinds cudnn lsh_pallas --lengths 65536 --budget_s 0.4'
timeout 200 python benchmarks/ab_trees.py run .data/trees --timeout_s 66 -- bash -c "$AB" > $OUT/ab_c1.txt 2>&1; echo "exit $?" >> $OUT/ab_c1.txt
grep '^==\|^|\|exit\|rror' $OUT/ab_c1.txt | grep -v -- '---\|direction'; echo "t=$((SECONDS-T0))"
D=$(( LIMIT - 15 - (SECONDS-T0) )); [ $D -gt 420 ] && D=420; echo "suite D=$D"
PYTHONUNBUFFERED=1 python benchmarks/gpu_suite.py --workers 6 --deadline_s $D --steps_scale 0.5 --out /tmp/suite > /tmp/suite.log 2>&1
tail -n 22 /tmp/suite.log; cp /tmp/suite/summary.md $OUT/suite_summary_c1.md
tar czf $OUT/suite_logs_c1.tgz -C /tmp suite suite.log; echo "t=$((SECONDS-T0))"
