# session 51 call 1: unpack, make the ListOps splits, start lo.sh (budget B) in the background, peek until the call's end
tar xf .data/src.tar && git status --short | head -5
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu.txt; cat $OUT/gpu.txt
B=${B:-1100} setsid nohup bash .data/lo.sh > /tmp/lo_sh.log 2>&1 &
sleep ${S:-540}; bash .data/peek.sh
