# session 46 call A: Pathfinder splits, then four Reformer diagnostics side by side (one lra.py, 4 jobs)
# (run from the repository root with .data/ carried: setup.sh installs the gin/tensorboardX wheels; call_b.sh is .data/collect46.sh, peek.sh was .data/peek46.sh)
B=${B:-1050}; W=${W:-560}; echo budget $B wait $W
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu.txt; cat $OUT/gpu.txt
python -c "
from plait.data.lra import lra_pathfinder_inputs as f
for s in ('train', 'validation', 'test'): f(s, 512, workers=14, cache_dir='/tmp/splits')
" > /tmp/splits.log 2>&1; echo splits $SECONDS
T=('{encoder}.d_model = 32' '{encoder}.d_ff = 32' '{encoder}.n_layers = 4' '{encoder}.n_heads = 4' '{encoder}.head_d_ff = 32')
D=('{encoder}.n_buckets = 1' '{encoder}.chunk_len = 256' '{encoder}.n_hashes = 1')
setsid nohup python benchmarks/lra.py --tasks pathfinder --models reformer --accuracy_only --budget_s $B \
  --splits_dir /tmp/splits --runs_dir /tmp/pf --data_workers 3 --config 'LoopSettings.eval_every = 1000' \
  --jobs 4 --memory_fraction 0.92 --out /tmp/pf_reformer \
  --variant tshape_dense "${T[@]}" "${D[@]}" \
  --variant tshape_dense_cls "${T[@]}" "${D[@]}" "{encoder}.pooling = 'cls'" \
  --variant tshape_dense_seed1 "${T[@]}" "${D[@]}" 'LoopSettings.seed = 1' \
  --variant lsh_cls "{encoder}.pooling = 'cls'" > /tmp/pf_reformer.log 2>&1 &
echo launched $SECONDS
while [ $SECONDS -lt $W ]; do sleep 20; done
bash .data/peek46.sh
