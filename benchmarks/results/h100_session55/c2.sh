# session 55 call 2 (same lease as call 1): causal FAVOR+ GPU checks (bf16 kernels vs float32 XLA) and times, then the GPU suite
# on this tree in what time is left (its kernel checks included)
T0=$SECONDS
source .data/setup.sh
(timeout 200 python benchmarks/favor_causal_gpu.py --lengths 65536 4096 --check_length 4096 --budget_s 0.3 --out $OUT/favor2.json 2>&1 | grep -v "^W0000\|^I0000") > $OUT/favor2.txt 2>&1
echo "favor rc $?"; grep '^|\|check\|rel' $OUT/favor2.txt | tail -n 40; echo "t=$((SECONDS-T0))"
D=$((560 - (SECONDS - T0))) bash benchmarks/results/h100_session53/c4.sh
