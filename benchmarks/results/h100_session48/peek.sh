for f in $(find /tmp/pf -name "metrics.jsonl"); do echo "$f $(wc -l < $f)"; grep '"split": "eval' "$f" | cut -c1-150; grep '"train"' "$f" | tail -n 1 | cut -c1-220; done
echo "== log"; tail -n 6 /tmp/pf.log; nvidia-smi | grep MiB
