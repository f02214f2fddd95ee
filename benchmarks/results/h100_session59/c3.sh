# session 59 call 3 (what device time was left after seven refused starts: not the whole suite): causal FAVOR+ keeping the
# (L, d+1) sums under recompute_features=True (tree) vs main f080900 (old.tar) at 4K/16K/64K with cuDNN and the kept maps;
# then the parts of the GPU suite that run this code, side by side: the causal FAVOR+ kernel checks (suite part 6) and the
# Performer full config through plait-train / resume / plait-decode (part 1, that config alone, steps x 0.5)
T0=$SECONDS
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu3.txt
L="--lengths 4096 16384 65536 --causal causal --budget_s 0.4"
(echo "== tree"; timeout 70 python benchmarks/attention_gpu.py $L --kinds cudnn favor favor_keep | grep '^|'
 echo "== main"; (cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 50 python benchmarks/attention_gpu.py $L --kinds favor | grep '^|')) > $OUT/favor3.txt 2>&1
cat $OUT/favor3.txt; echo "t=$((SECONDS-T0))"
R=$((${LIMIT:-300}-15-(SECONDS-T0)))
export XLA_PYTHON_CLIENT_PREALLOCATE=false
(timeout $R python benchmarks/favor_causal_gpu.py --lengths 4096 --check_length 16384 --budget_s 0.2 > $OUT/favor_checks3.txt 2>&1; echo "exit $?" >> $OUT/favor_checks3.txt) &
(PLAIT_GPU_SUITE_OUT=$OUT/performer3.jsonl PLAIT_GPU_SUITE_STEPS=0.5 timeout $R python -m pytest -q -p no:warnings -n 0 -m gpu tests/gpu -k performer_crime_and_punishment -s > $OUT/performer3.txt 2>&1; echo "exit $?" >> $OUT/performer3.txt) &
wait
tail -8 $OUT/favor_checks3.txt; tail -3 $OUT/performer3.txt; cat $OUT/performer3.jsonl
echo "t=$((SECONDS-T0))"
