# session 53 call 4 (second lease): checks, fwd+bwd times new (this tree) vs old (8d10f81), [tree: 209df66]
# profiles at 64K, Triton warps/stages of the block-sparse kernels at 64K (new)
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu2.txt; cat $OUT/gpu2.txt
(timeout 150 python benchmarks/block_sparse_kernel_gpu.py; echo "block_sparse_kernel_gpu rc $?"
 timeout 200 python benchmarks/lsh_kernel_gpu.py; echo "lsh_kernel_gpu rc $?") > $OUT/checks2.txt 2>&1
grep -E " rc |TOO" $OUT/checks2.txt
L="--lengths 4096 16384 65536 --causal bidirectional causal --budget_s 0.5"
timeout 200 python benchmarks/attention_gpu.py $L --kinds flash-core cudnn block_sparse-core block_sparse_pallas lsh-core lsh_pallas --out $OUT/new2.json > $OUT/new2.txt 2>&1; echo "new rc $?"
(cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 150 python benchmarks/attention_gpu.py $L --kinds block_sparse-core block_sparse_pallas lsh-core lsh_pallas --out $OUT/old2.json) > $OUT/old2.txt 2>&1; echo "old rc $?"
grep '^|' $OUT/new2.txt $OUT/old2.txt
(for a in "--kind block_sparse_pallas" "--kind block_sparse_pallas --causal" "--kind lsh_pallas --causal"; do
   echo "== new $a"; timeout 80 python benchmarks/profile_gpu.py attention $a --length 65536 --top 25 | grep '^|\|wall\|busy'
   echo "== old $a"; (cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 80 python benchmarks/profile_gpu.py attention $a --length 65536 --top 25 | grep '^|\|wall\|busy')
 done) > $OUT/profiles2.log 2>&1
timeout 120 python benchmarks/block_sparse_kernel_gpu.py --tune 65536 --warps_stages 4 2 4 3 8 2 8 3 > $OUT/tune2.txt 2>&1; echo "tune rc $?"
grep '^{' $OUT/tune2.txt
