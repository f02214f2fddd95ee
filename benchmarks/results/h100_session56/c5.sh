# session 56 call 5 (282 s of budget left after four refused starts): the causal product's column-piece gradients summed in
# the output kernels (tree, 14d9c55) vs by XLA (ca1a08f, old.tar), then side by side the suite's parts that run these
# kernels: the FAVOR+ GPU checks at 16K and 4K, gpu_paths' FAVOR+ tests, the Performer config (as far as the limit lets it)
T0=$SECONDS
source .data/setup.sh
export XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu5.txt
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
L="--lengths 4096 16384 65536 --causal causal --budget_s 0.4 --kinds favor"
(echo "== tree (pieces' gradients summed in the kernels)"; timeout 40 python benchmarks/attention_gpu.py $L | grep '^|'
 echo "== before (ca1a08f: XLA adds them)"; cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 40 python benchmarks/attention_gpu.py $L | grep '^|') > $OUT/ab5.txt 2>&1
cat $OUT/ab5.txt; echo "t=$((SECONDS-T0))"
LEFT=$((${LIMIT:-230} - (SECONDS - T0)))
(PLAIT_GPU_SUITE_STEPS=0.5 timeout $LEFT python -m pytest -p no:cacheprovider -m gpu -n 0 tests/gpu -k performer > $OUT/performer5.log 2>&1; echo "performer rc $?" >> $OUT/performer5.log) &
(timeout $LEFT python -m pytest -p no:cacheprovider -m "not slow" -n 0 tests/layers/attention/test_favor_deterministic.py > $OUT/favor_det5.log 2>&1; echo "favor_deterministic rc $?" >> $OUT/favor_det5.log) &
(for n in 16384 4096; do timeout $LEFT python benchmarks/favor_causal_gpu.py --lengths --check_length $n 2>&1 | grep '"check"'; echo "favor checks at $n rc ${PIPESTATUS[0]}"; done > $OUT/favor_checks5.txt) &
wait
tail -n 3 $OUT/performer5.log $OUT/favor_det5.log; cat $OUT/favor_checks5.txt; echo "t=$((SECONDS-T0))"
