# session 55 call 1: this tree (952cb5d reapplied: fewer ops per logit in the sparse kernels; causal FAVOR+ states in parallel
# segments and [v, 1] as 64 + 16 columns) vs main before both (83fc588, old.tar), fwd+bwd same call; the causal block-sparse
# backward width 12 vs 16 (sparse_combine_ab); LSH and causal FAVOR+ profiles of this tree
T0=$SECONDS
source .data/setup.sh
mkdir -p /tmp/old && tar xf .data/old.tar -C /tmp/old
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu1.txt
L="--lengths 4096 16384 65536 --causal bidirectional causal --budget_s 0.4 --kinds lsh_pallas lsh-core block_sparse_pallas block_sparse-core favor"
(echo "== tree"; timeout 170 python benchmarks/attention_gpu.py $L --out $OUT/tree1.json | grep '^|'
 echo "== main"; cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 170 python benchmarks/attention_gpu.py $L --out $OUT/main1.json | grep '^|') > $OUT/times1.txt 2>&1
cat $OUT/times1.txt; echo "t=$((SECONDS-T0))"
(cd benchmarks && PYTHONUNBUFFERED=1 timeout 120 python sparse_combine_ab.py --lengths 65536 16384 --budget_s 0.6 --variants landed landed+bwd16 landed 2>&1 | grep -v "^W0000\|^I0000") > $OUT/ab1.txt 2>&1
grep '^|\|agree' $OUT/ab1.txt | tail -n 30; echo "t=$((SECONDS-T0))"
P="benchmarks/profile_gpu.py attention --length 65536 --causal --top 14"
(echo "== tree favor (causal, main's default)"; timeout 80 python $P --kind favor | grep '^|\|wall'
 echo "== tree lsh_pallas"; timeout $((585 - (SECONDS - T0))) python $P --kind lsh_pallas | grep '^|\|wall') > $OUT/profile1.log 2>&1; cat $OUT/profile1.log
