f=$(find /tmp/long -name metrics.jsonl | head -1); [ -n "$f" ] && { cp $f $OUT/metrics.jsonl; echo "$f $(wc -l < $f)"; grep '"split": "eval' "$f" | tail -n 6 | cut -c1-150; grep '"train"' "$f" | tail -n 1 | cut -c1-220; }
echo "== logs"; tail -n 3 /tmp/long.log /tmp/long_sh.log 2>/dev/null; nvidia-smi | grep MiB
