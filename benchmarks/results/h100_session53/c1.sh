# session 53 call 1: GPU facts; the block-sparse and LSH kernels vs XLA on the GPU (new code); [tree: c002677]
# profiles of the block-sparse layer at 64K, bidirectional, new code and old (8d10f81)
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu.txt
git log --oneline -1 >> $OUT/gpu.txt; cat $OUT/gpu.txt
(timeout 150 python benchmarks/block_sparse_kernel_gpu.py; echo "block_sparse_kernel_gpu rc $?"
 timeout 200 python benchmarks/lsh_kernel_gpu.py; echo "lsh_kernel_gpu rc $?") > $OUT/checks.txt 2>&1
grep -v Warning $OUT/checks.txt | tail -n 40
P="benchmarks/profile_gpu.py attention --kind block_sparse_pallas --length 65536"
timeout 100 python $P --out $OUT/profile_new.json > /tmp/p_new.log 2>&1; echo "profile new rc $?"
(cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 100 python $P --out $OUT/profile_old.json) > /tmp/p_old.log 2>&1; echo "profile old rc $?"
tail -n 3 /tmp/p_new.log /tmp/p_old.log; head -c 2500 $OUT/profile_new.json; head -c 2500 $OUT/profile_old.json
