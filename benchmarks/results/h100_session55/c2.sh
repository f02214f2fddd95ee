# session 55 call 2 (same lease as call 1): the GPU suite on this tree (its kernel checks included) [tree: 4a46dfd]
D=${D:-500} bash benchmarks/results/h100_session53/c4.sh
