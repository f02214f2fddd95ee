# session 56 call 2 (same lease): the whole GPU suite on this tree (feature kernels reapplied), full deadline
D=560 bash benchmarks/results/h100_session53/c4.sh
