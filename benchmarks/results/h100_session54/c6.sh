# session 54 call 6: kernels with fewer ops per logit (LSH: only the other rounds' chunk ids; causal: one mask compare) (branch lsh-ops) vs main [tree: lsh-ops, see RESULTS 37; old.tar = main's plait (bcc5475)]
# fwd+bwd times (this tree and main, same call), a profile, then the GPU suite (its kernel checks included) in what time is left
T0=$SECONDS
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu6.txt
L="--lengths 4096 16384 65536 --causal bidirectional causal --budget_s 0.5 --kinds lsh_pallas lsh-core block_sparse_pallas block_sparse-core"
(echo "== tree"; timeout 90 python benchmarks/attention_gpu.py $L | grep '^|'
 echo "== main"; cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 90 python benchmarks/attention_gpu.py $L | grep '^|') > $OUT/times6.txt 2>&1
cat $OUT/times6.txt
P="benchmarks/profile_gpu.py attention --kind lsh_pallas --length 65536 --causal --top 8"
(echo "== tree"; timeout 60 python $P | grep '^|\|wall') > $OUT/profile6.log 2>&1; cat $OUT/profile6.log
D=$((525 - (SECONDS - T0))); echo "suite deadline $D s"
PYTHONUNBUFFERED=1 python benchmarks/gpu_suite.py --workers 6 --deadline_s $D --steps_scale 0.5 --out /tmp/suite > /tmp/suite.log 2>&1; echo "suite rc $?"
cp /tmp/suite/summary.md $OUT/suite_summary6.md; cat $OUT/suite_summary6.md
