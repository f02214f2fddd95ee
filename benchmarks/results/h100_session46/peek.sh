for f in $(find /tmp/pf -name "metrics.jsonl"); do echo "$f $(wc -l < $f)"; grep '"split": "eval' "$f" | cut -c1-150; tail -n 1 "$f" | cut -c1-220; done
echo "== log"; tail -n 6 /tmp/pf_reformer.log; nvidia-smi | grep MiB
