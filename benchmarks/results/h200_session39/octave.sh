#!/bin/bash
# Pathfinder with octave positions, every kind side by side (session 39), each its own lra.py
# process (the GPU suite ran beside them for the first 6 minutes).
# From the repo root after `source .data/setup.sh`; outputs under /tmp/pf.
# 10 % of the GPU's memory each; the Reformer's step needs more (at 10 % it stopped at its first
# step, RESOURCE_EXHAUSTED allocating 15.29 GiB): in session 39 it was restarted 5 minutes later
# with 30 % and BUDGET_S=950, as the last line here does from the start.
R=/tmp/pf; mkdir -p $R
run() {  # run MODEL MEMORY_FRACTION BUDGET_S
  XLA_PYTHON_CLIENT_MEM_FRACTION=$2 setsid nohup python3 benchmarks/lra.py --tasks pathfinder \
    --models $1 --accuracy_only --budget_s $3 --data_workers 2 \
    --splits_dir .data/splits --runs_dir $R/runs --out $R/$1 \
    --variant octave "{encoder}.positional = 'octave'" > $R/$1.log 2>&1 < /dev/null &
}
for model in transformer performer bigbird local; do run $model 0.1 1350; done
run reformer 0.3 950
sleep 1; ps aux | grep -c "[b]enchmarks/lr[a].py"
