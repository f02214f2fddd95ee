# session 59 call 2 (a later lease): PerformerLM's step on the tree and on main; every LM kind's training step at 8K/32K on
# the tree; ReformerLM 2^20
T0=$SECONDS
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
(echo "== main"; cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 60 python benchmarks/models_gpu.py long_lm --only PerformerLM 2>&1 | grep '^|') > $OUT/performer2.txt 2>&1
(timeout 330 python benchmarks/models_gpu.py long_lm --out $OUT/long_lm_tree.json 2>&1 | grep -v Warning) > $OUT/long_lm2.txt 2>&1
cat $OUT/performer2.txt $OUT/long_lm2.txt; echo "t=$((SECONDS-T0))"
(timeout 150 python benchmarks/models_gpu.py reformer_long --reps 3 --out $OUT/reformer_long.json 2>&1 | tail -5) > $OUT/rl2.txt
cat $OUT/rl2.txt; echo "t=$((SECONDS-T0))"
