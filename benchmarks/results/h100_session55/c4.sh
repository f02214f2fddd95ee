# session 55 call 4: causal FAVOR+ with the feature kernels (tree) vs without (88cafb5, prev.tar) and main before the session
# (83fc588, old.tar) at 4K and 64K; then, side by side, the FAVOR+ GPU checks at 4K (one segment) and 16K (4 segments; the
# layer's kernel path vs XLA) and gpu_paths (which c2's suite deadline cut)
T0=$SECONDS
source .data/setup.sh
for t in old prev; do mkdir -p /tmp/$t && tar xf .data/$t.tar -C /tmp/$t; done
L="--lengths 65536 4096 --causal causal --budget_s 0.3 --kinds favor"
(echo "== tree"; timeout 45 python benchmarks/attention_gpu.py $L --out $OUT/favor_tree4.json | grep '^|'
 for t in prev old; do echo "== $t"; (cd /tmp/$t && PYTHONPATH=/tmp/$t:/tmp/site timeout 40 python benchmarks/attention_gpu.py $L | grep '^|'); done) > $OUT/favor_times4.txt 2>&1
cat $OUT/favor_times4.txt; echo "t=$((SECONDS-T0))"
PATHS=$(cd benchmarks && python -c "import gpu_suite; print(' '.join(gpu_suite.GPU_PATH_TESTS))")
LEFT=$((${LIMIT:-200} - (SECONDS - T0)))
(XLA_PYTHON_CLIENT_PREALLOCATE=false timeout $LEFT python -m pytest -p no:cacheprovider -m "not slow" -n 0 $PATHS > $OUT/gpu_paths4.log 2>&1; echo "gpu_paths rc $?" >> $OUT/gpu_paths4.log) &
(for n in 16384 4096; do XLA_PYTHON_CLIENT_PREALLOCATE=false timeout $LEFT python benchmarks/favor_causal_gpu.py --lengths --check_length $n 2>&1 | grep '"check"'; echo "favor checks at $n rc ${PIPESTATUS[0]}"; done > $OUT/favor_checks4.txt) &
wait
tail -n 2 $OUT/gpu_paths4.log; cat $OUT/favor_checks4.txt; echo "t=$((SECONDS-T0))"
