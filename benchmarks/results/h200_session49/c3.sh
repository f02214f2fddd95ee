# session 49 call 3 (fresh machine): the ListOps Transformer alone for a B s budget (default 170), its best checkpoint scored on the test split and on test-stream examples 0..19,999
tar xf .data/src.tar && git status --short | head -5
source .data/setup.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu3.txt
timeout ${T:-400} python benchmarks/lra.py --tasks listops --models transformer --accuracy_only --budget_s ${B:-170} \
  --test_examples 20000 --splits_dir /tmp/splits --runs_dir /tmp/lo --data_workers 14 --out $OUT/stream > $OUT/stream.log 2>&1
echo "exit $?"; tail -n 12 $OUT/stream.log
cp /tmp/lo/lra_listops_transformer/metrics.jsonl /tmp/lo/lra_listops_transformer/config.gin $OUT/ 2>/dev/null; ls $OUT
