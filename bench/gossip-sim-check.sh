#!/bin/sh
# gossip-sim must be deterministic given its seed, and sane: two runs with
# loss, a crash and a broadcast print the same JSON line, the broadcast
# reaches every live node, the crashed node is declared dead everywhere and
# no live node is.
set -eu
sim=$1
args="--nodes 200 --seed 7 --loss 0.02 --event --event-at-s 2 --kill 1
      --kill-at-s 2 --duration-s 25 --json"
a=$("$sim" $args 2>/dev/null)
b=$("$sim" $args 2>/dev/null)
if [ "$a" != "$b" ]; then
	echo "gossip-sim: two runs with one seed differ:"
	echo "$a"
	echo "$b"
	exit 1
fi
echo "$a"
echo "$a" | grep -q '"knows":199,' || { echo "event did not reach all"; exit 1; }
echo "$a" | grep -q '"all_max_ms":-1' && { echo "crash not detected"; exit 1; }
echo "$a" | grep -q '"false_positive_nodes":0,' || { echo "false positives"; exit 1; }
echo "gossip-sim: deterministic"
