# session 63 call 2 (the same lease, right after call 1): the whole GPU suite on the tree of call 1 (b6401fc)
D=400 bash benchmarks/results/h100_session53/c4.sh 2>&1 | tail -40
