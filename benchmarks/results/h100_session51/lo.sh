# session 51: ListOps, rotary positions and a 10,000-step schedule: Transformer and Reformer, each its own lra.py side by side on one GPU (0.45 of its memory each), budget B s each; best checkpoints also scored on test-stream examples 0..19,999
# (.data/splits.sh, which makes the ListOps splits, is results/h100_session50/splits.sh, unchanged)
source .data/setup.sh
[ -f /tmp/splits.log ] || W=14 bash .data/splits.sh
while ! grep -q "splits done" /tmp/splits.log; do sleep 2; done
V=(--variant rotary_10k "{encoder}.positional = 'rotary'" "train.steps = 10000")
for m in transformer reformer; do
  python benchmarks/lra.py --tasks listops --models $m --accuracy_only --budget_s $B --test_examples 20000 \
    --splits_dir /tmp/splits --runs_dir /tmp/lo --data_workers 3 --memory_fraction 0.45 \
    --out /tmp/lo_$m "${V[@]}" > /tmp/lo_$m.log 2>&1 &
done
wait
echo "lo done $SECONDS s" >> /tmp/lo.log
