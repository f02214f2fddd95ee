# session 46 call B (ran as .data/collect46.sh on the warm H100 after call A; .data/peek46.sh is peek.sh here)
W=${W:-560}
for i in $(seq 1 $((W / 10))); do [ -f /tmp/pf_reformer/lra.json ] && break; sleep 10; done; echo waited $SECONDS
tail -n 30 /tmp/pf_reformer.log
bash .data/peek46.sh
tar czf $OUT/pf_runs.tgz --exclude=checkpoints -C /tmp pf pf_reformer pf_reformer.log splits.log 2>&1 | tail -2
ls -la $OUT
