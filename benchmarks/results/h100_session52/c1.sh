# session 52 call 1: unpack, GPU facts, the ListOps splits (results/h100_session50/splits.sh, 14 processes)
tar xf .data/src.tar && git status --short | head -5
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu.txt; cat $OUT/gpu.txt
W=14 bash .data/splits.sh; tail -n 2 /tmp/splits.log
