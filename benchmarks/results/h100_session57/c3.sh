# session 57 call 3 (instead of call 1 once the refused starts left too little device time for the suite): causal FAVOR+ with
# one output kernel per product (tree) vs 2a29a32 (old.tar); the causal FAVOR+ GPU checks on the tree; LSH tree vs 2a29a32;
# the product kernels' knobs in what is left of LIMIT
T0=$SECONDS
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu3.txt
L="--lengths 4096 16384 65536 --causal causal --budget_s 0.4 --kinds favor"
(echo "== tree"; timeout 70 python benchmarks/attention_gpu.py $L | grep '^|'
 echo "== main"; cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 70 python benchmarks/attention_gpu.py $L | grep '^|') > $OUT/times3.txt 2>&1
cat $OUT/times3.txt; echo "t=$((SECONDS-T0))"
timeout 90 python benchmarks/favor_causal_gpu.py --lengths --check_length 16384 > $OUT/favor_checks3.log 2>&1; echo "checks exit $?" >> $OUT/favor_checks3.log
tail -n 12 $OUT/favor_checks3.log; echo "t=$((SECONDS-T0))"
L="--lengths 16384 65536 --causal bidirectional causal --budget_s 0.3 --kinds lsh_pallas"
(echo "== tree lsh"; timeout 50 python benchmarks/attention_gpu.py $L | grep '^|'
 echo "== main lsh"; cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 50 python benchmarks/attention_gpu.py $L | grep '^|') > $OUT/lsh3.txt 2>&1
cat $OUT/lsh3.txt; echo "t=$((SECONDS-T0))"
(cd benchmarks && timeout $((${LIMIT:-575}-(SECONDS-T0))) python favor_product_tune.py --layer_lengths) > $OUT/product_tune3.log 2>&1
tail -n 16 $OUT/product_tune3.log; echo "t=$((SECONDS-T0))"
