# session 60 call 1: causal FAVOR+ layer A/B at 4K/16K/64K, fwd+bwd, recompute_features=True ('favor'): main (the working
# tree, first and last), wip/favor-sums (the checkpoint keeps the product's sums), wip/favor-sums-states (+ db and dc share
# one states pass), wip/favor-inkernel (new causal kernels that make the features in registers); then cuDNN and the kept
# maps on main for scale
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu1.txt
L="--lengths 4096 16384 65536 --causal causal --budget_s 0.4"
(python benchmarks/ab_trees.py run .data/trees --bracket --timeout_s 90 -- python benchmarks/attention_gpu.py $L --kinds favor 2>&1 | grep '^==\|^|\|rror'
 echo "== tree: cudnn, favor_keep"; timeout 60 python benchmarks/attention_gpu.py $L --kinds cudnn favor_keep 2>&1 | grep '^|') > $OUT/ab1.txt
cp $OUT/ab1.txt /tmp/ab1.txt; cat $OUT/ab1.txt; echo "t=$((SECONDS-T0))"
