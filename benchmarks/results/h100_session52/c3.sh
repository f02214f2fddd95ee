# session 52 call 3: peek after S s; once long.sh is done, bring back the table, log and config
for i in $(seq 1 $((${S:-570} / 5))); do grep -q "long done" /tmp/long.log 2>/dev/null && break; sleep 5; done
bash .data/peek.sh
if grep -q "long done" /tmp/long.log; then cp /tmp/long_out/lra.json /tmp/long_out/lra.md /tmp/long.log $OUT/; cp $(find /tmp/long -name config.gin | head -1) $OUT/; fi
ls $OUT
