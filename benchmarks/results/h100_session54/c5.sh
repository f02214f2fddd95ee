# session 54 call 5: whole-model effect: BigBirdLM vs TransformerLM training tokens/s at 8K and 32K, this tree and old (d84bc9e); [tree: see RESULTS 37]
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu5.txt; cat $OUT/gpu5.txt
timeout 240 python benchmarks/models_gpu.py long_lm --only TransformerLM BigBirdLM --out $OUT/long_lm_new.json > $OUT/long_lm_new.txt 2>&1; echo "new rc $?"
(cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 160 python benchmarks/models_gpu.py long_lm --only BigBirdLM --out $OUT/long_lm_old.json) > $OUT/long_lm_old.txt 2>&1; echo "old rc $?"
grep '^|\|^{' $OUT/long_lm_new.txt $OUT/long_lm_old.txt | grep -v W0000 | tail -n 20
