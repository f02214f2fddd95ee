# session 42 call 1: splits, then BigBird kernel-vs-XLA training and the compacted Reformer's LRA run
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv > $OUT/gpu.txt
python -c "
from plait.data.lra import lra_pathfinder_inputs as f
for s in ('train', 'validation', 'test'): f(s, 512, workers=14, cache_dir='/tmp/splits')
" > /tmp/splits.log 2>&1; echo splits $SECONDS
XLA_PYTHON_CLIENT_MEM_FRACTION=0.3 setsid nohup python benchmarks/pathfinder_kernels_gpu.py --config lra_pathfinder_bigbird --steps 8000 --every 1000 --splits_dir /tmp/splits --data_workers 2 > /tmp/kern.log 2>&1 &
XLA_PYTHON_CLIENT_MEM_FRACTION=0.5 setsid nohup python benchmarks/lra.py --tasks pathfinder --models reformer --accuracy_only --memory_fraction 0.5 --budget_s 800 --splits_dir /tmp/splits --runs_dir /tmp/pf --out /tmp/pf_out > /tmp/pf.log 2>&1 &
echo launched $SECONDS
