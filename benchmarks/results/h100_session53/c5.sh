# session 53 call 6: checks and fwd+bwd times of 06bc419's kernels (the sequence-major layout reverted) [tree: 06bc419 = 112069c]
source .data/setup.sh
(timeout 150 python benchmarks/block_sparse_kernel_gpu.py; echo "block_sparse_kernel_gpu rc $?"
 timeout 200 python benchmarks/lsh_kernel_gpu.py; echo "lsh_kernel_gpu rc $?") > $OUT/checks3.txt 2>&1
grep -E " rc |TOO" $OUT/checks3.txt
L="--lengths 4096 16384 65536 --causal bidirectional causal --budget_s 0.5"
timeout 200 python benchmarks/attention_gpu.py $L --kinds cudnn block_sparse-core block_sparse_pallas lsh-core lsh_pallas --out $OUT/new3.json > $OUT/new3.txt 2>&1; echo "new rc $?"
grep '^|' $OUT/new3.txt
