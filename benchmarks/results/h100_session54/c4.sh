# session 54 call 4 (same lease as call 3): the GPU suite on this tree [tree: bcc5475's plait + c3.sh commit]
D=500 bash benchmarks/results/h100_session53/c4.sh
