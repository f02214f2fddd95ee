# session 53 call 7: c002677 (scatter combine) vs this tree (grouped reductions): times and profiles at 64K [tree: 112069c; c1.tar = c002677]
source .data/setup.sh
mkdir -p /tmp/c1 && tar xf .data/c1.tar -C /tmp/c1
L="--lengths 65536 --causal bidirectional causal --budget_s 1 --kinds block_sparse-core block_sparse_pallas"
(echo "== tree"; timeout 100 python benchmarks/attention_gpu.py $L | grep '^|'
 echo "== c002677"; cd /tmp/c1 && PYTHONPATH=/tmp/c1:/tmp/site timeout 100 python benchmarks/attention_gpu.py $L | grep '^|') > $OUT/times4.txt 2>&1
cat $OUT/times4.txt
P="benchmarks/profile_gpu.py attention --kind block_sparse_pallas --length 65536 --top 16"
(echo "== tree"; timeout 80 python $P | grep '^|\|wall'
 echo "== c002677"; cd /tmp/c1 && PYTHONPATH=/tmp/c1:/tmp/site timeout 80 python $P | grep '^|\|wall') > $OUT/profiles4.log 2>&1
cat $OUT/profiles4.log
