# session 55 call 3: causal FAVOR+ at 4K with no offsets for one segment (tree) vs main before the session (83fc588), then,
# side by side, what c2's suite deadline cut (reformer_imagenet64, gpu_paths) and the FAVOR+ checks at 4K (one segment)
# and 16K (4 segments), on this tree
T0=$SECONDS
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
L="--lengths 4096 --causal causal --budget_s 0.4 --kinds favor"
(echo "== tree"; timeout 40 python benchmarks/attention_gpu.py $L --out $OUT/favor_tree3.json | grep '^|'
 echo "== main"; cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 40 python benchmarks/attention_gpu.py $L --out $OUT/favor_main3.json | grep '^|') > $OUT/favor_times3.txt 2>&1
cat $OUT/favor_times3.txt; echo "t=$((SECONDS-T0))"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PLAIT_GPU_SUITE_STEPS=0.5 PLAIT_GPU_SUITE_OUT=$OUT/configs3.jsonl
PATHS=$(cd benchmarks && python -c "import gpu_suite; print(' '.join(gpu_suite.GPU_PATH_TESTS))")
LEFT=$((${LIMIT:-330} - (SECONDS - T0)))
(timeout $LEFT python -m pytest -p no:cacheprovider -m gpu -n 1 tests/gpu -k "imagenet64" > $OUT/configs3.log 2>&1; echo "configs rc $?" >> $OUT/configs3.log) &
(timeout $LEFT python -m pytest -p no:cacheprovider -m "not slow" -n 0 $PATHS > $OUT/gpu_paths3.log 2>&1; echo "gpu_paths rc $?" >> $OUT/gpu_paths3.log) &
(for n in 4096 16384; do timeout $LEFT python benchmarks/favor_causal_gpu.py --lengths 1024 --check_length $n --budget_s 0.05 2>&1 | grep -v "^W0000\|^I0000"; echo "favor checks at $n rc ${PIPESTATUS[0]}"; done > $OUT/favor_checks3.txt) &
wait
tail -n 3 $OUT/configs3.log $OUT/gpu_paths3.log; grep 'check\|rc' $OUT/favor_checks3.txt; cat $OUT/configs3.jsonl; echo "t=$((SECONDS-T0))"
