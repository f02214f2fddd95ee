# session 50 call 2: start the ListOps rotary runs (lo.sh, budget B) in the background, peek until the call's end
tar xf .data/src.tar && git status --short | head -5
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu2.txt
B=${B:-950} setsid nohup bash .data/lo.sh > /tmp/lo_sh.log 2>&1 &
sleep ${S:-560}; bash .data/peek.sh
