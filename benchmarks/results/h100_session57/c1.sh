# session 57 call 1 (the only one the device budget allowed after twelve refused starts): causal FAVOR+ with one output
# kernel per product over the column pieces (tree) vs 2a29a32 (old.tar) at 4K/16K/64K; the whole GPU suite on the tree;
# then, in what is left of LIMIT, LSH (tree: permutation gathers promised in bounds) vs 2a29a32 at 16K/64K
T0=$SECONDS
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu1.txt
L="--lengths 4096 16384 65536 --causal causal --budget_s 0.4 --kinds favor"
(echo "== tree"; timeout 80 python benchmarks/attention_gpu.py $L | grep '^|'
 echo "== main"; cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 80 python benchmarks/attention_gpu.py $L | grep '^|') > $OUT/times1.txt 2>&1
cat $OUT/times1.txt; echo "t=$((SECONDS-T0))"
D=$((${LIMIT:-575}-45-(SECONDS-T0))) bash benchmarks/results/h100_session53/c4.sh
echo "t=$((SECONDS-T0))"
L="--lengths 16384 65536 --causal bidirectional causal --budget_s 0.3 --kinds lsh_pallas"
LEFT=$(((${LIMIT:-575}-(SECONDS-T0))/2))
(echo "== tree lsh"; timeout $LEFT python benchmarks/attention_gpu.py $L | grep '^|'
 echo "== main lsh"; cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout $LEFT python benchmarks/attention_gpu.py $L | grep '^|') > $OUT/lsh1.txt 2>&1
cat $OUT/lsh1.txt; echo "t=$((SECONDS-T0))"
