# session 49: ListOps splits, then Transformer + BigBird (one lra.py, 2 jobs) beside the Reformer with raw keys (its own lra.py: a variant binds every model)
source .data/setup.sh
python -c "
from plait.data.lra import lra_listops_inputs as f
for s in ('train', 'validation', 'test'): f(s, 32, workers=14, cache_dir='/tmp/splits')
" > /tmp/splits.log 2>&1; echo "splits done $SECONDS s" >> /tmp/splits.log
python benchmarks/lra.py --tasks listops --models transformer bigbird --accuracy_only --budget_s $B \
  --splits_dir /tmp/splits --runs_dir /tmp/lo --data_workers 3 --jobs 2 --memory_fraction 0.6 \
  --out /tmp/lo_out > /tmp/lo.log 2>&1 &
XLA_PYTHON_CLIENT_MEM_FRACTION=0.3 python benchmarks/lra.py --tasks listops --models reformer --accuracy_only \
  --budget_s $B --splits_dir /tmp/splits --runs_dir /tmp/lo --data_workers 3 --out /tmp/lo_raw \
  --variant raw_keys '{encoder}.normalize_keys = False' > /tmp/lo_raw.log 2>&1 &
wait
echo "lo done $SECONDS s" >> /tmp/lo.log
