# session 58 call 3 (same lease, run as one command line): cuDNN, favor, favor_keep at 4K/16K/64K on the tree (6a05b32 +
# e7ed466), then with the product kernels' tile 128 and output kernels on 4 warps patched in by sed, then tile 64 with 4 warps
source .data/setup.sh; L="--lengths 4096 16384 65536 --causal causal --budget_s 0.4 --kinds cudnn favor favor_keep"
(echo "== tree"; timeout 100 python benchmarks/attention_gpu.py $L | grep '^|'
 sed -i "s/^_TILE = 64 /_TILE = 128 /; s/'output': (8, 2)/'output': (4, 2)/" plait/layers/attention/favor_kernel.py
 grep -n "^_TILE\|^COMPILER_PARAMS" plait/layers/attention/favor_kernel.py
 echo "== tile 128, output 4 warps"; timeout 100 python benchmarks/attention_gpu.py $L | grep '^|'
 sed -i 's/^_TILE = 128 /_TILE = 64 /' plait/layers/attention/favor_kernel.py
 echo "== tile 64, output 4 warps"; timeout 80 python benchmarks/attention_gpu.py --lengths 16384 65536 --causal causal --budget_s 0.4 --kinds favor favor_keep | grep '^|') > $OUT/combo3.txt 2>&1; cat $OUT/combo3.txt
