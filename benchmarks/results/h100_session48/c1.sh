# session 48 call 1: Pathfinder splits then training in the background (pf.sh, budget B), while the GPU suite runs
tar xf .data/src.tar && git status --short | head -5
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu.txt; cat $OUT/gpu.txt
B=${B:-900} setsid nohup bash .data/pf.sh > /tmp/pf_sh.log 2>&1 &
PYTHONUNBUFFERED=1 python benchmarks/gpu_suite.py --workers 6 --deadline_s 500 --steps_scale 0.5 --out /tmp/suite 2>&1 | tee /tmp/suite.log | tail -n 40
cp /tmp/suite/summary.md $OUT/suite_summary.md
tar czf $OUT/suite_logs.tgz -C /tmp suite suite.log
echo "== splits"; tail -n 3 /tmp/splits.log; bash .data/peek.sh
