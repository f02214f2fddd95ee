# session 59 call 1: causal FAVOR+ keeping the (L, d+1) sums under recompute_features=True (tree: the checkpoint policy
# saves them, so the backward reruns the feature maps but not the product) vs main f080900 (old.tar) at 4K/16K/64K with
# cuDNN and the kept maps; whole models: every LM kind at 8K/32K on the tree, PerformerLM on main; ReformerLM 2^20;
# (the suite goes in call 2)
T0=$SECONDS
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu1.txt
L="--lengths 4096 16384 65536 --causal causal --budget_s 0.4"
(echo "== tree"; timeout 80 python benchmarks/attention_gpu.py $L --kinds cudnn favor favor_keep | grep '^|'
 echo "== main"; (cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 60 python benchmarks/attention_gpu.py $L --kinds favor | grep '^|')
 echo "== tree again"; timeout 50 python benchmarks/attention_gpu.py $L --kinds favor | grep '^|') > $OUT/favor1.txt 2>&1
cat $OUT/favor1.txt; echo "t=$((SECONDS-T0))"
(echo "== tree"; timeout 200 python benchmarks/models_gpu.py long_lm --out $OUT/long_lm_tree.json 2>&1 | grep -v Warning
 echo "== main"; (cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 80 python benchmarks/models_gpu.py long_lm --only TransformerLM PerformerLM 2>&1 | grep '^|')) > $OUT/long_lm1.txt 2>&1
cat $OUT/long_lm1.txt; echo "t=$((SECONDS-T0))"
(timeout 90 python benchmarks/models_gpu.py reformer_long --reps 3 --out $OUT/reformer_long.json 2>&1 | tail -5) > $OUT/rl1.txt
cat $OUT/rl1.txt; echo "t=$((SECONDS-T0))"
