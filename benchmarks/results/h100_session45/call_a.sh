# session 45 call A: splits; short diagnostic Pathfinder runs side by side (BigBird at Local's shape with/without random blocks; Reformer at the Transformer's shape and as dense shared-QK; Local as control)
B=${B:-470}; echo budget $B
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu.txt; cat $OUT/gpu.txt
python -c "
from plait.data.lra import lra_pathfinder_inputs as f
for s in ('train', 'validation', 'test'): f(s, 512, workers=14, cache_dir='/tmp/splits')
" > /tmp/splits.log 2>&1; echo splits $SECONDS
EV='LoopSettings.eval_every = 1000'
COMMON="--tasks pathfinder --accuracy_only --budget_s $B --splits_dir /tmp/splits --runs_dir /tmp/pf --data_workers 2 --config"
setsid nohup python benchmarks/lra.py $COMMON "$EV" --models bigbird --jobs 2 --memory_fraction 0.36 --out /tmp/pf_bigbird \
  --variant local_shape "{encoder}.n_layers = 2" "{encoder}.n_heads = 4" "{encoder}.dropout = 0.1" \
  --variant local_shape_norand "{encoder}.n_layers = 2" "{encoder}.n_heads = 4" "{encoder}.dropout = 0.1" "{encoder}.num_rand_blocks = 0" > /tmp/pf_bigbird.log 2>&1 &
setsid nohup python benchmarks/lra.py $COMMON "$EV" --models reformer --jobs 2 --memory_fraction 0.36 --out /tmp/pf_reformer \
  --variant transformer_shape "{encoder}.d_model = 32" "{encoder}.d_ff = 32" "{encoder}.n_layers = 4" "{encoder}.n_heads = 4" "{encoder}.head_d_ff = 32" \
  --variant dense_qk "{encoder}.n_buckets = 1" "{encoder}.chunk_len = 256" > /tmp/pf_reformer.log 2>&1 &
XLA_PYTHON_CLIENT_MEM_FRACTION=0.15 setsid nohup python benchmarks/lra.py $COMMON "$EV" --models local --jobs 1 --out /tmp/pf_local --variant control "{encoder}.dropout = 0.1" > /tmp/pf_local.log 2>&1 &
echo launched $SECONDS
W=${W:-540}
while [ $SECONDS -lt $W ]; do sleep 30; done
for f in $(find /tmp/pf -name "metrics.jsonl"); do echo "$f $(wc -l < $f)"; grep '"split": "eval' "$f" | tail -n 4 | cut -c1-160; tail -n 1 "$f" | cut -c1-200; done
echo "== logs"; for l in bigbird reformer local; do echo "-- $l"; tail -n 4 /tmp/pf_$l.log; done
nvidia-smi | grep MiB
cp /tmp/splits.log /tmp/pf_*.log $OUT/ 2>/dev/null
