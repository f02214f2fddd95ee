# session 45 calls B and C, on the same warm H100 right after call_a.sh (runs in /tmp/pf resume
# from their latest checkpoint when the config is the same)
source .data/setup.sh
# B: BigBird at Local's shape, resumed from call A's step 6,265, alone on the GPU for 330 s more
XLA_PYTHON_CLIENT_MEM_FRACTION=0.5 python benchmarks/lra.py --tasks pathfinder --accuracy_only \
  --budget_s 330 --splits_dir /tmp/splits --runs_dir /tmp/pf --data_workers 2 \
  --config 'LoopSettings.eval_every = 1000' --models bigbird --jobs 1 --out /tmp/pf_bigbird2 \
  --variant local_shape "{encoder}.n_layers = 2" "{encoder}.n_heads = 4" "{encoder}.dropout = 0.1"
# C: the Reformer as dense shared-QK attention (one bucket, one chunk), alone (in call A it asked
# for 14.30 GiB beyond its 18 % share and stopped)
XLA_PYTHON_CLIENT_MEM_FRACTION=0.6 python benchmarks/lra.py --tasks pathfinder --accuracy_only \
  --budget_s 270 --splits_dir /tmp/splits --runs_dir /tmp/pf --data_workers 2 \
  --config 'LoopSettings.eval_every = 1000' --models reformer --jobs 1 --out /tmp/pf_reformer2 \
  --variant dense_qk "{encoder}.n_buckets = 1" "{encoder}.chunk_len = 256"
