#!/bin/bash
# Four Pathfinder variants side by side (session 38), each its own lra.py process.
# From the repo root after `source .data/setup.sh`; outputs under /tmp/pf.
R=/tmp/pf; mkdir -p $R
run() {  # run NAME MODEL BINDING...
  local v=$1 model=$2; shift 2
  local cfg=(); for b in "$@"; do cfg+=(--config "$b"); done
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.12 setsid nohup python3 benchmarks/lra.py --tasks pathfinder \
    --models $model --accuracy_only --budget_s 2400 --data_workers 2 --splits_dir .data/splits \
    --runs_dir $R/$v/runs --out $R/$v/out "${cfg[@]}" > $R/$v.log 2>&1 < /dev/null &
}
T=TransformerEncoder
run lra002 transformer "$T.positional = 'learned'" "$T.positional_init_std = 0.02"
run sky transformer "$T.positional = 'learned'" "$T.positional_init_std = 0.02" \
  "$T.n_layers = 2" "$T.d_model = 64" "$T.d_ff = 128" "$T.n_heads = 2" "$T.head_d_ff = 128" \
  "$T.dropout = 0.1" "multifactor.constant = 0.0002"
run paper128 transformer "$T.positional = 'learned'" "$T.positional_init_std = 0.02" \
  "$T.n_layers = 1" "$T.d_model = 128" "$T.d_ff = 128" "$T.n_heads = 4" "$T.head_d_ff = 128"
P=PerformerEncoder
run performer performer "$P.positional = 'learned'" "$P.positional_init_std = 0.02"
sleep 1; ps aux | grep -c "[b]enchmarks/lr[a].py"
