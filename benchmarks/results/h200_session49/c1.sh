# session 49 call 1: start ListOps runs in the background (lo.sh, budget B), peek until the call's end
tar xf .data/src.tar && git status --short | head -5
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu.txt; cat $OUT/gpu.txt
B=${B:-950} setsid nohup bash .data/lo.sh > /tmp/lo_sh.log 2>&1 &
sleep ${S:-420}; bash .data/peek.sh
