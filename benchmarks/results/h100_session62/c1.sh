# session 62 call 1 (session 61 c2, unchanged): the whole-model table, every LM kind's training step at 8K (batch 8) and 32K (batch 2) tokens
# against TransformerLM (cuDNN) on the working tree (main)
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu2.txt
timeout 540 python benchmarks/models_gpu.py long_lm --out $OUT/long_lm2.json > $OUT/long_lm2.txt 2>&1; echo "exit $?" >> $OUT/long_lm2.txt
grep '^|\|exit\|rror' $OUT/long_lm2.txt; echo "t=$((SECONDS-T0))"
