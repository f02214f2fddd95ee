# session 69, call 2 (c2.sh never ran: no machine): length-adaptive states segments for
# causal FAVOR+ (9881eb0) A/B against main, its GPU checks and the Performer config; then,
# with the time left, the product knobs at 4K and profiles with optimized HLO (for the glue
# around the LSH and block-sparse kernels and the 4K causal FAVOR+ layer), all in extra.tgz.
T0=$SECONDS
source .data/setup.sh
mkdir -p /tmp/x
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
timeout 130 python benchmarks/ab_trees.py run .data/trees_seg --timeout_s 60 -- python benchmarks/attention_gpu.py --causal causal --kinds favor --lengths 4096 16384 65536 --budget_s 0.5 > $OUT/ab_seg.txt 2>&1; echo "exit $?" >> $OUT/ab_seg.txt
grep '^==\|^| causal\|^exit' $OUT/ab_seg.txt; echo "t=$((SECONDS-T0))"
timeout 100 python benchmarks/favor_causal_gpu.py --lengths 4096 --check_length 16384 --budget_s 0.2 > $OUT/favor_checks.txt 2>&1; echo "exit $?" >> $OUT/favor_checks.txt
tail -n 12 $OUT/favor_checks.txt; echo "t=$((SECONDS-T0))"
PLAIT_GPU_SUITE_STEPS=0.5 XLA_PYTHON_CLIENT_PREALLOCATE=false PLAIT_GPU_SUITE_OUT=$OUT/configs.jsonl timeout 170 python -m pytest -p no:cacheprovider -m gpu tests/gpu -k performer > $OUT/performer.txt 2>&1; echo "exit $?" >> $OUT/performer.txt
tail -n 4 $OUT/performer.txt; cat $OUT/configs.jsonl; echo "t=$((SECONDS-T0))"
prof() {  # name kind causal-flag length
  [ $((SECONDS-T0)) -lt 300 ] || return
  XLA_FLAGS="--xla_dump_to=/tmp/dump_$1 --xla_dump_hlo_as_text" timeout 40 python benchmarks/profile_gpu.py attention --kind $2 $3 --length $4 --top 40 > /tmp/x/prof_$1.txt 2>&1; echo "exit $?" >> /tmp/x/prof_$1.txt
  mkdir -p /tmp/x/hlo_$1 && cp $(ls -S /tmp/dump_$1/*after_optimizations.txt | head -2) /tmp/x/hlo_$1/ 2>/dev/null
  sed -n 3p /tmp/x/prof_$1.txt; echo "t=$((SECONDS-T0)) $1"
}
prof fav4c favor --causal 4096
prof lsh64c lsh_pallas --causal 65536
prof bs64c block_sparse_pallas --causal 65536
[ $((SECONDS-T0)) -lt 280 ] && timeout 50 python benchmarks/favor_product_tune.py --length 4096 --layer_lengths --out /tmp/x/tune4k.json > /tmp/x/tune4k.txt 2>&1
(cd /tmp/x && tar czf $OUT/extra.tgz .); ls -la $OUT; echo "t=$((SECONDS-T0))"
