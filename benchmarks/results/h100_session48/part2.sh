# session 48 part 2, on the same warm H100 right after c2.sh: the two raw-key runs resumed from their checkpoints in /tmp/pf for 320 s more
source .data/setup.sh; R='{encoder}.normalize_keys = False'
timeout 450 python benchmarks/lra.py --tasks pathfinder --models reformer --accuracy_only --budget_s 320 --splits_dir /tmp/splits --runs_dir /tmp/pf --data_workers 3 --config 'LoopSettings.eval_every = 1000' --jobs 2 --memory_fraction 0.9 --out /tmp/pf_out2 --variant raw_keys "$R" --variant raw_keys_seed1 "$R" 'LoopSettings.seed = 1' > /tmp/pf2.log 2>&1
