# session 57 call 2 (same lease): the whole GPU suite on this tree (one output kernel per FAVOR+ product; LSH gathers in bounds)
D=560 bash benchmarks/results/h100_session53/c4.sh
