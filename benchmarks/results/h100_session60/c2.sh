# session 60 call 2 (same lease; run as `D=300 bash c3.sh`, renamed here; its outputs kept as suite_summary2.md,
# suite_logs2.tgz, winner2.txt): the whole GPU suite (D seconds) on the tree pick.py chose from call 1's A/B (/tmp/ab1.txt,
# left on the warm machine by call 1): its packed plait/, benchmarks/ and tests/ unpacked over the working tree (main)
W=$(python3 benchmarks/results/h100_session60/pick.py /tmp/ab1.txt) || exit 1
echo "suite on: $W" | tee $OUT/winner.txt
[ "$W" = main ] || tar xf .data/trees/$W.tar || exit 1
bash benchmarks/results/h100_session53/c4.sh
