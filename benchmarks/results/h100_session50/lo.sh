# session 50: ListOps with rotary positions: Transformer + BigBird (one lra.py, 2 jobs) beside the Reformer (its own lra.py), budget B s each; every best checkpoint also scored on test-stream examples 0..19,999
source .data/setup.sh
[ -f /tmp/splits.log ] || W=14 bash .data/splits.sh
while ! grep -q "splits done" /tmp/splits.log; do sleep 2; done
V="{encoder}.positional = 'rotary'"
python benchmarks/lra.py --tasks listops --models ${M:-transformer bigbird} --accuracy_only --budget_s $B --test_examples 20000 \
  --splits_dir /tmp/splits --runs_dir /tmp/lo --data_workers 3 --jobs ${J:-2} --memory_fraction 0.6 \
  --out /tmp/lo_out --variant rotary "$V" > /tmp/lo.log 2>&1 &
XLA_PYTHON_CLIENT_MEM_FRACTION=0.3 python benchmarks/lra.py --tasks listops --models reformer --accuracy_only \
  --budget_s $B --test_examples 20000 --splits_dir /tmp/splits --runs_dir /tmp/lo --data_workers 3 \
  --out /tmp/lo_rf --variant rotary "$V" > /tmp/lo_rf.log 2>&1 &
wait
echo "lo done $SECONDS s" >> /tmp/lo.log
