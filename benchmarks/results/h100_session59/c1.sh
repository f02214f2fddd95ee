# session 59 call 1: causal FAVOR+ keeping the (L, d+1) sums under recompute_features=True (tree: the checkpoint policy
# saves them, so the backward reruns the feature maps but not the product) vs main f080900 (old.tar) at 4K/16K/64K with
# cuDNN and the kept maps; then the whole GPU suite on the tree with what is left of the call (LIMIT seconds in all);
# PerformerLM's step, every LM kind and ReformerLM 2^20 go in a later call (c2.sh)
T0=$SECONDS
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu1.txt
L="--lengths 4096 16384 65536 --causal causal --budget_s 0.4"
(echo "== tree"; timeout 70 python benchmarks/attention_gpu.py $L --kinds cudnn favor favor_keep | grep '^|'
 echo "== main"; (cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 50 python benchmarks/attention_gpu.py $L --kinds favor | grep '^|')) > $OUT/favor1.txt 2>&1
cat $OUT/favor1.txt; echo "t=$((SECONDS-T0))"
D=$((${LIMIT:-590}-20-(SECONDS-T0))) bash benchmarks/results/h100_session53/c4.sh
echo "t=$((SECONDS-T0))"
