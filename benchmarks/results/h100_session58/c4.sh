# session 58 call 4 (same lease): the tree with output kernels on 4 warps (31c2764) and f080976's auto default (the causal kernel
# path kept the feature maps; reverted in 1171d00 for the model's memory, RESULTS 41); `favor` passed recompute_features=True,
# `favor_keep` False, as in attention_gpu.py now; then the whole GPU suite, D=300
source .data/setup.sh
(timeout 60 python benchmarks/attention_gpu.py --lengths 4096 16384 65536 --causal causal --budget_s 0.4 --kinds cudnn favor favor_keep | grep '^|') > $OUT/auto4.txt 2>&1; cat $OUT/auto4.txt
D=300 bash benchmarks/results/h100_session53/c4.sh
