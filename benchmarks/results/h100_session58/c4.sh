# session 58 call 4 (same lease): the tree with output kernels on 4 warps and recompute_features=None (auto: the causal kernel
# path keeps the feature maps), as committed next in the two commits after e7ed466; at the time `favor` still passed recompute_features=True and
# `favor_keep` False (now `favor` is the default and `favor_recompute` True); then the whole GPU suite, D=300
source .data/setup.sh
(timeout 60 python benchmarks/attention_gpu.py --lengths 4096 16384 65536 --causal causal --budget_s 0.4 --kinds cudnn favor favor_keep | grep '^|') > $OUT/auto4.txt 2>&1; cat $OUT/auto4.txt
D=300 bash benchmarks/results/h100_session53/c4.sh
