# session 48 call 2: the performer config alone (it ran out of memory beside the Pathfinder runs in call 1), then wait for the runs and pack them
tar xf .data/src.tar; source .data/setup.sh
( export XLA_PYTHON_CLIENT_PREALLOCATE=false PLAIT_GPU_SUITE_OUT=/tmp/perf_rows.jsonl PLAIT_GPU_SUITE_STEPS=0.5 PYTHONPATH=$PWD:$PYTHONPATH
  python -m pytest -p no:cacheprovider -m gpu tests/gpu -k performer_crime > /tmp/performer_rerun.log 2>&1; echo "rc $?" >> /tmp/performer_rerun.log ) &
W=${W:-540}; while [ $SECONDS -lt $W ]; do grep -q "pf done" /tmp/pf.log 2>/dev/null && break; sleep 10; done; echo "waited $SECONDS"
wait; tail -n 5 /tmp/performer_rerun.log; cat /tmp/perf_rows.jsonl; cp /tmp/performer_rerun.log /tmp/perf_rows.jsonl $OUT/
tail -n 30 /tmp/pf.log; bash .data/peek.sh
tar czf $OUT/pf_runs.tgz -C /tmp/pf . ; tar czf $OUT/pf_out.tgz -C /tmp pf_out pf.log splits.log pf_sh.log
ls -la $OUT
