# session 56 call 1: causal FAVOR+ with the feature kernels (tree, dcc4ca5) vs without (aa03ff3, old.tar) at 4K/16K/64K,
# tree again (the first row's order noise); LSH (tree: rounds combined from bf16) vs main at 16K/64K, then 4K profiles of both (where
# the 4K time goes); 64K profiles of the tree's FAVOR+ and LSH with the glue fusions' HLO
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
P="benchmarks/profile_gpu.py attention --length 4096 --causal --top 16 --kind favor"
(echo "== tree 4K"; timeout 80 python $P | grep '^|\|wall'
 echo "== main 4K"; cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/site timeout 80 python $P | grep '^|\|wall') > $OUT/profile1.log 2>&1
cat $OUT/profile1.log; echo "t=$((SECONDS-T0))"
# 64K profiles of the tree's causal FAVOR+ and LSH layers with XLA's dump: the glue fusions' HLO
for k in favor lsh_pallas; do
 (XLA_FLAGS="--xla_dump_to=/tmp/dump_$k --xla_dump_hlo_as_text" timeout 100 python benchmarks/profile_gpu.py attention --length 65536 --causal --top 24 --kind $k | grep '^|\|wall' > /tmp/prof_$k.txt; cat /tmp/prof_$k.txt
  python benchmarks/results/h100_session56/hlo_fusions.py /tmp/dump_$k $(grep '| fusion \|| reduce ' /tmp/prof_$k.txt | cut -d'|' -f2 | tr -d ' ')) > $OUT/${k}_hlo1.txt 2>&1
 head -n 30 $OUT/${k}_hlo1.txt; echo "t=$((SECONDS-T0))"
done
