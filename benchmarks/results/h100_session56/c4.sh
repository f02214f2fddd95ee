# session 56 call 4 (what the budget left after three refused starts: no room for the whole suite): the feature kernels'
# settings timed (bare at 64K, the causal FAVOR+ layer at 4K/16K/64K for the default and the 2 fastest); if choose.py's fixed
# rule picks one, the tree is patched to it and the suite's parts that run these kernels run on it side by side: the FAVOR+
# GPU checks at 16K and 4K, gpu_paths' FAVOR+ tests, the Performer config (trains, resumes, decodes)
T0=$SECONDS
source .data/setup.sh
export XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu4.txt
(cd benchmarks && timeout 170 python favor_feature_tune.py --rows 64 128 --features 64 128 --warps 4 8 --out $OUT/tune4.json 2>&1 | grep -v "^W0000\|^I0000") > $OUT/tune4.txt
cat $OUT/tune4.txt; echo "t=$((SECONDS-T0))"
python benchmarks/results/h100_session56/choose.py $OUT/tune4.json | tee $OUT/choose4.txt || exit 0
grep -n "^_ROWS\|^_FEATURES\|^COMPILER_PARAMS" plait/layers/attention/favor_feature_kernel.py | tee -a $OUT/choose4.txt
LEFT=$((${LIMIT:-400} - (SECONDS - T0)))
(PLAIT_GPU_SUITE_STEPS=0.5 timeout $LEFT python -m pytest -p no:cacheprovider -m gpu -n 0 tests/gpu -k performer > $OUT/performer4.log 2>&1; echo "performer rc $?" >> $OUT/performer4.log) &
(timeout $LEFT python -m pytest -p no:cacheprovider -m "not slow" -n 0 tests/layers/attention/test_favor_deterministic.py > $OUT/favor_det4.log 2>&1; echo "favor_deterministic rc $?" >> $OUT/favor_det4.log) &
(for n in 16384 4096; do timeout $LEFT python benchmarks/favor_causal_gpu.py --lengths --check_length $n 2>&1 | grep '"check"'; echo "favor checks at $n rc ${PIPESTATUS[0]}"; done > $OUT/favor_checks4.txt) &
wait
tail -n 3 $OUT/performer4.log $OUT/favor_det4.log; cat $OUT/favor_checks4.txt; echo "t=$((SECONDS-T0))"
