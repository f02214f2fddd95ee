# session 58 call 1: causal FAVOR+ with one output kernel per product over the column pieces (tree, 6a05b32) vs d4c73d3
# (= 2a29a32's plait, old.tar) at 4K/16K/64K, tree again; LSH (tree: permutation gathers promised in bounds, e7ed466) vs
# main at 16K/64K; then the whole GPU suite on the tree with what is left of the call
T0=$SECONDS
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu1.txt
L="--lengths 4096 16384 65536 --causal causal --budget_s 0.4 --kinds favor"
(echo "== tree"; timeout 70 python benchmarks/attention_gpu.py $L --out $OUT/tree1.json | grep '^|'
 echo "== main"; (cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 70 python benchmarks/attention_gpu.py $L --out $OUT/main1.json | grep '^|')
 echo "== tree again"; timeout 70 python benchmarks/attention_gpu.py $L | grep '^|') > $OUT/times1.txt 2>&1
cat $OUT/times1.txt; echo "t=$((SECONDS-T0))"
L="--lengths 16384 65536 --causal bidirectional causal --budget_s 0.4 --kinds lsh_pallas"
(echo "== tree lsh"; timeout 60 python benchmarks/attention_gpu.py $L | grep '^|'
 echo "== main lsh"; cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 60 python benchmarks/attention_gpu.py $L | grep '^|') > $OUT/lsh1.txt 2>&1
cat $OUT/lsh1.txt; echo "t=$((SECONDS-T0))"
D=$((585-25-(SECONDS-T0))) bash benchmarks/results/h100_session53/c4.sh
echo "t=$((SECONDS-T0))"
