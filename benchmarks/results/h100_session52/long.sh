# session 52: ListOps Transformer, rotary positions, training batches bucketed by length, a 30,000-step
# schedule, alone on the GPU for a budget of B s (step times every 100 steps; peek.sh brings the
# run's metrics.jsonl back at each call's end)
source .data/setup.sh
echo "long started B=$B" > /tmp/long.log
python benchmarks/lra.py --tasks listops --models transformer --accuracy_only --budget_s $B --test_examples 20000 \
  --splits_dir /tmp/splits --runs_dir /tmp/long --data_workers 3 --memory_fraction 0.9 --out /tmp/long_out \
  --config "LoopSettings.log_every = 100" \
  --variant rotary_bucketed_30k "{encoder}.positional = 'rotary'" "lra_listops_inputs.bucket_lengths = (768, 1024, 1536, 2000)" \
  "eval/lra_listops_inputs.bucket_lengths = None" "train.steps = 30000" >> /tmp/long.log 2>&1
echo "long done exit $? $SECONDS s" >> /tmp/long.log
