# session 67: the GPU suite alone on the working tree (a call of its own: it did not finish
# in D 420 beside an A/B on session 66's H200). Usage: LIMIT=590 TAG=c2 bash suite.sh
T0=$SECONDS
LIMIT=${LIMIT:-590}; TAG=${TAG:-cX}
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu_$TAG.txt
D=$(( LIMIT - 20 - (SECONDS-T0) )); echo "suite D=$D"
PYTHONUNBUFFERED=1 python benchmarks/gpu_suite.py --workers 6 --deadline_s $D --steps_scale 0.5 --out /tmp/suite > /tmp/suite.log 2>&1
tail -n 22 /tmp/suite.log; cp /tmp/suite/summary.md $OUT/suite_summary_$TAG.md
tar czf $OUT/suite_logs_$TAG.tgz -C /tmp suite suite.log; echo "t=$((SECONDS-T0))"
