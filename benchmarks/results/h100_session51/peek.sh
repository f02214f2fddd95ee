for f in $(find /tmp/lo -name "metrics.jsonl"); do echo "$f $(wc -l < $f)"; grep '"split": "eval' "$f" | tail -n 4 | cut -c1-150; grep '"train"' "$f" | tail -n 1 | cut -c1-200; done
echo "== logs"; tail -n 4 /tmp/splits.log /tmp/lo.log /tmp/lo_transformer.log /tmp/lo_reformer.log 2>/dev/null; nvidia-smi | grep MiB
