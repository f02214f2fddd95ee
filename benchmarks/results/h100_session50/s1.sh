# session 50 call 1: the GPU suite on the rotary-position code (alone on the GPU); the ListOps splits made on the CPU beside it
tar xf .data/src.tar && git status --short | head -5
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu.txt; cat $OUT/gpu.txt
W=6 setsid nohup bash .data/splits.sh > /dev/null 2>&1 &
PYTHONUNBUFFERED=1 python benchmarks/gpu_suite.py --workers 6 --deadline_s ${D:-500} --steps_scale 0.5 --out /tmp/suite 2>&1 | tee /tmp/suite.log | tail -n 40
cp /tmp/suite/summary.md $OUT/suite_summary.md
tar czf $OUT/suite_logs.tgz -C /tmp suite suite.log
echo "== splits"; tail -n 2 /tmp/splits.log
