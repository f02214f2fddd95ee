# session 54 call 3: GPU checks of the kernels (block-sparse, LSH) on this tree; fwd+bwd times of this tree, [tree: bcc5475]
# mid (269f345: backward rows twice as wide, head-major) and old (d84bc9e: session start); profiles of the layer at 64K (this tree)
source .data/setup.sh
for t in old mid; do mkdir -p /tmp/$t && tar xf .data/$t.tar -C /tmp/$t; done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu3.txt; cat $OUT/gpu3.txt
(timeout 150 python benchmarks/block_sparse_kernel_gpu.py; echo "block_sparse_kernel_gpu rc $?"
 timeout 200 python benchmarks/lsh_kernel_gpu.py; echo "lsh_kernel_gpu rc $?") > $OUT/checks3.txt 2>&1
grep -v Warning $OUT/checks3.txt | grep -i "rc \|ok\|fail\|err" | tail -n 30
L="--lengths 4096 16384 65536 --causal bidirectional causal --budget_s 0.5"
timeout 200 python benchmarks/attention_gpu.py $L --kinds flash-core cudnn block_sparse-core block_sparse_pallas lsh_pallas --out $OUT/new3.json > $OUT/new3.txt 2>&1; echo "new rc $?"
(cd /tmp/mid && PYTHONPATH=/tmp/mid:/tmp/site timeout 120 python benchmarks/attention_gpu.py $L --kinds block_sparse-core block_sparse_pallas --out $OUT/mid3.json) > $OUT/mid3.txt 2>&1; echo "mid rc $?"
(cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 150 python benchmarks/attention_gpu.py $L --kinds block_sparse-core block_sparse_pallas lsh_pallas --out $OUT/old3.json) > $OUT/old3.txt 2>&1; echo "old rc $?"
grep '^|' $OUT/new3.txt $OUT/mid3.txt $OUT/old3.txt
P="benchmarks/profile_gpu.py attention --kind block_sparse_pallas --length 65536 --top 16"
(echo "== tree bidirectional"; timeout 80 python $P | grep '^|\|wall'
 echo "== tree causal"; timeout 80 python $P --causal | grep '^|\|wall') > $OUT/profiles3.log 2>&1
cat $OUT/profiles3.log
P="benchmarks/profile_gpu.py attention --kind lsh_pallas --length 65536 --causal --top 20"
(echo "== tree LSH causal"; timeout 100 python $P | grep '^|\|wall') > $OUT/profile_lsh3.log 2>&1
cat $OUT/profile_lsh3.log
