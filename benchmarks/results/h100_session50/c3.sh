# session 50 call 3: wait for lo.sh to finish, then bring back the tables, logs and each run's config.gin + metrics
for i in $(seq 1 ${W:-110}); do grep -q "lo done" /tmp/lo.log 2>/dev/null && break; sleep 5; done
bash .data/peek.sh
for d in lo_out lo_rf; do for f in lra.json lra.md; do [ -f /tmp/$d/$f ] && cp /tmp/$d/$f $OUT/${d}_$f; done; done
cd /tmp && tar czf $OUT/runs.tgz lo.log lo_rf.log splits.log lo_sh.log $(cd /tmp && find lo -name config.gin -o -name metrics.jsonl) && ls -la $OUT
