# session 61 call 1: where the in-kernel causal FAVOR+ (wip/favor-inkernel) spends its 10.8 ms at 64K: its profile, then its
# one-knob tune (chunk, tile, segment chunks, warps, dq and dk/dv split), the layer at 64K for the defaults and the 2 fastest
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu1.txt
python benchmarks/ab_trees.py run .data/trees --timeout_s 240 -- python benchmarks/favor_causal_tune.py --top 2 --layer_lengths 65536 --out $OUT/tune1.json > $OUT/tune1.txt 2>&1
tail -30 $OUT/tune1.txt; echo "t=$((SECONDS-T0))"
[ $((SECONDS-T0)) -lt 250 ] && python benchmarks/ab_trees.py run .data/trees --timeout_s 90 -- python benchmarks/profile_gpu.py attention --kind favor --length 65536 --causal --top 20 2>&1 | tail -32 > $OUT/profile1.txt
cat $OUT/profile1.txt; echo "t=$((SECONDS-T0))"
