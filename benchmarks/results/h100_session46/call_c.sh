# session 46 call C, on the same warm H100 after call B: the Transformer as shipped (control) and the
# dense shared-QK Reformer at the Transformer's shape in float32, side by side, 400 s each
source .data/setup.sh; T=('{encoder}.d_model = 32' '{encoder}.d_ff = 32' '{encoder}.n_layers = 4' '{encoder}.n_heads = 4' '{encoder}.head_d_ff = 32'); D=('{encoder}.n_buckets = 1' '{encoder}.chunk_len = 256' '{encoder}.n_hashes = 1')
C="--tasks pathfinder --accuracy_only --budget_s 400 --splits_dir /tmp/splits --runs_dir /tmp/pf2 --data_workers 3 --config LoopSettings.eval_every=1000"
XLA_PYTHON_CLIENT_MEM_FRACTION=0.3 python benchmarks/lra.py $C --models transformer --jobs 1 --out /tmp/pf_t --variant control '{encoder}.dropout = 0.2' > /tmp/pf_t.log 2>&1 &
XLA_PYTHON_CLIENT_MEM_FRACTION=0.6 python benchmarks/lra.py $C --models reformer --jobs 1 --out /tmp/pf_f32 --variant tshape_dense_f32 "${T[@]}" "${D[@]}" "LoopSettings.compute_dtype = 'float32'" > /tmp/pf_f32.log 2>&1 &
wait; echo done $SECONDS
for f in $(find /tmp/pf2 -name "metrics.jsonl"); do echo "$f $(wc -l < $f)"; grep '"split": "eval' "$f" | cut -c1-120; grep '"train"' $f | tail -n 1 | cut -c1-200; done
tail -n 5 /tmp/pf_t.log /tmp/pf_f32.log
tar czf $OUT/pf2_runs.tgz --exclude=checkpoints -C /tmp pf2 pf_t pf_f32 pf_t.log pf_f32.log
