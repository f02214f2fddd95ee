# session 62 call 9: the sparse kernels at head widths 48 and 96 (zero-padded to 64 and 128) against their XLA
# paths and cuDNN, at 16K causal; then the GPU suite on this tree with what is left of the session's device time
T0=$SECONDS
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu9.txt
timeout 150 python benchmarks/head_width_gpu.py --widths 48 96 --length 16384 --out $OUT/widths9.json > $OUT/widths9.txt 2>&1; echo "exit $?" >> $OUT/widths9.txt
tail -8 $OUT/widths9.txt; echo "t=$((SECONDS-T0))"
D=$(( ${BUDGET:-440} - (SECONDS-T0) )) bash benchmarks/results/h100_session53/c4.sh
echo "t=$((SECONDS-T0))"
