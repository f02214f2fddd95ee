# session 51 call 2: peek at the runs after S s
sleep ${S:-560}; bash .data/peek.sh
