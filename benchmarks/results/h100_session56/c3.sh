# session 56 call 3: the feature kernels' settings (rows, feature tile, warps) timed bare at 64K and as the causal FAVOR+
# layer at 4K/16K/64K (default + 2 fastest); if choose.py's fixed rule picks one, the tree is patched to it and the whole
# GPU suite runs on the patched tree in the time left
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu3.txt
(cd benchmarks && timeout 230 python favor_feature_tune.py --rows 64 128 --features 64 128 --warps 4 8 --out $OUT/tune3.json 2>&1 | grep -v "^W0000\|^I0000") > $OUT/tune3.txt
cat $OUT/tune3.txt; echo "t=$((SECONDS-T0))"
python benchmarks/results/h100_session56/choose.py $OUT/tune3.json | tee $OUT/choose3.txt || exit 0
grep -n "^_ROWS\|^_FEATURES\|^COMPILER_PARAMS" plait/layers/attention/favor_feature_kernel.py | tee -a $OUT/choose3.txt
D=$((${LIMIT:-585} - (SECONDS - T0))) bash benchmarks/results/h100_session53/c4.sh
