# session 54 call 1: split-block variants of the block-sparse kernel (plan widths, grouped combine, stages), one process [tree: 8af7fef]
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
cd benchmarks && PYTHONUNBUFFERED=1 timeout 560 python sparse_combine_ab.py --lengths 16384 65536 --variants landed grouped landed+bwd16 landed+fwd16+bwd16 landed+fwd16+bwd16+stages3 landed+fwd16+bwd24 2>&1 | grep -v "^W0000\|^I0000" | tee $OUT/ab1.txt | tail -n 60
