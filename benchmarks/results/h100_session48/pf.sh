# session 48: Pathfinder splits, then four Reformer runs side by side (one lra.py, 4 jobs), checkpoints kept to resume
source .data/setup.sh
python -c "
from plait.data.lra import lra_pathfinder_inputs as f
for s in ('train', 'validation', 'test'): f(s, 512, workers=8, cache_dir='/tmp/splits')
" > /tmp/splits.log 2>&1; echo "splits done $SECONDS s" >> /tmp/splits.log
mkdir -p /tmp/pf && [ -f .data/pf_runs.tgz ] && tar xzf .data/pf_runs.tgz -C /tmp/pf
T=('{encoder}.d_model = 32' '{encoder}.d_ff = 32' '{encoder}.n_layers = 4' '{encoder}.n_heads = 4' '{encoder}.head_d_ff = 32')
D=('{encoder}.n_buckets = 1' '{encoder}.chunk_len = 256' '{encoder}.n_hashes = 1' '{encoder}.n_chunks_before = 0')
R='{encoder}.normalize_keys = False'
python benchmarks/lra.py --tasks pathfinder --models reformer --accuracy_only --budget_s $B \
  --splits_dir /tmp/splits --runs_dir /tmp/pf --data_workers 2 --config 'LoopSettings.eval_every = 1000' \
  --jobs 4 --memory_fraction 0.4 --out /tmp/pf_out \
  --variant raw_keys "$R" \
  --variant raw_keys_seed1 "$R" 'LoopSettings.seed = 1' \
  --variant tshape_dense_raw "${T[@]}" "${D[@]}" "$R" \
  --variant tshape_dense_unit "${T[@]}" "${D[@]}" > /tmp/pf.log 2>&1
echo "pf done $SECONDS s" >> /tmp/pf.log
