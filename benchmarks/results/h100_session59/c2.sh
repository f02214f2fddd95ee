# session 59 call 2 (same lease): the whole GPU suite on the tree
D=${D:-480} bash benchmarks/results/h100_session53/c4.sh
