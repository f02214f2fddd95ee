# session 52 call 2: start long.sh (budget B) in the background, then peek after S s
B=$B setsid nohup bash .data/long.sh > /tmp/long_sh.log 2>&1 &
sleep ${S:-570}; bash .data/peek.sh
