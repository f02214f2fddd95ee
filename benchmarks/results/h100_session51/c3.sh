# session 51 call 3: wait for lo.sh to finish, then bring back the tables, logs and each run's config.gin + metrics
for i in $(seq 1 ${W:-110}); do grep -q "lo done" /tmp/lo.log 2>/dev/null && break; sleep 5; done
bash .data/peek.sh
for m in transformer reformer; do for f in lra.json lra.md; do [ -f /tmp/lo_$m/$f ] && cp /tmp/lo_$m/$f $OUT/${m}_$f; done; done
cd /tmp && tar czf $OUT/runs.tgz lo.log lo_*.log splits.log $(find lo -name config.gin -o -name metrics.jsonl) && ls -la $OUT
