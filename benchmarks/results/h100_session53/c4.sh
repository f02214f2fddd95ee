# session 53 call 5: the GPU suite on this session's sparse_kernel changes (alone on the GPU) [call 5: 209df66; call 8 (D=300): c002677's kernel file]
source .data/setup.sh
PYTHONUNBUFFERED=1 python benchmarks/gpu_suite.py --workers 6 --deadline_s ${D:-500} --steps_scale 0.5 --out /tmp/suite 2>&1 | tee /tmp/suite.log | tail -n 40
cp /tmp/suite/summary.md $OUT/suite_summary.md
tar czf $OUT/suite_logs.tgz -C /tmp suite suite.log
