# session 53 call 2: fwd+bwd times, new code (this tree) and old (8d10f81, .data/old.tar) [tree: c002677]
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
L="--lengths 4096 16384 65536 --causal bidirectional causal --budget_s 0.5"
timeout 330 python benchmarks/attention_gpu.py $L --kinds flash-core cudnn block_sparse-core block_sparse_pallas --out $OUT/new.json > $OUT/new.txt 2>&1; echo "new rc $?"
(cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 200 python benchmarks/attention_gpu.py $L --kinds block_sparse-core block_sparse_pallas --out $OUT/old.json) > $OUT/old.txt 2>&1; echo "old rc $?"
grep '^|' $OUT/new.txt $OUT/old.txt
P="benchmarks/profile_gpu.py attention --kind block_sparse_pallas --length 65536 --top 30"
timeout 100 python $P > $OUT/profile_new.log 2>&1; echo "profile new rc $?"
(cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 100 python $P) > $OUT/profile_old.log 2>&1; echo "profile old rc $?"
grep '^|' $OUT/profile_new.log $OUT/profile_old.log
