# session 51 call 4: ListOps Transformer, rotary positions, training batches bucketed by length (768/1024/1536/2000), alone on the GPU for a budget of B s; a train row every 20 steps (its tokens / step give the batch's bucket, so the 2000 bucket's step time is this run's own unbucketed baseline); metrics copied to $OUT every 20 s in case the lease ends first
# (.data/splits.sh is results/h100_session50/splits.sh, unchanged)
tar xf .data/src.tar && git status --short | head -5
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu_bk.txt; cat $OUT/gpu_bk.txt
W=14 bash .data/splits.sh; tail -n 1 /tmp/splits.log
(while sleep 20; do cp /tmp/bk/*/metrics.jsonl $OUT/bk_metrics.jsonl 2>/dev/null; done) &
python benchmarks/lra.py --tasks listops --models transformer --accuracy_only --budget_s ${B:-240} --test_examples 20000 \
  --splits_dir /tmp/splits --runs_dir /tmp/bk --data_workers 3 --memory_fraction 0.9 --out /tmp/bk_out \
  --config "LoopSettings.log_every = 20" \
  --variant rotary_bucketed "{encoder}.positional = 'rotary'" "lra_listops_inputs.bucket_lengths = (768, 1024, 1536, 2000)" \
  "eval/lra_listops_inputs.bucket_lengths = None" "train.steps = 10000" > /tmp/bk.log 2>&1
echo "lra exit $?"; tail -n 5 /tmp/bk.log
cp /tmp/bk/*/metrics.jsonl $OUT/bk_metrics.jsonl; cp /tmp/bk/*/config.gin $OUT/bk_config.gin; cp /tmp/bk_out/lra.json $OUT/bk_lra.json; cp /tmp/bk.log $OUT/
