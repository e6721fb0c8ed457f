#!/bin/sh
# A stand-in claude-flow worker: picks up a "task" every few seconds, stops cleanly on TERM.
trap 'echo "worker: finishing current task and exiting"; exit 0' TERM INT
n=0
echo "worker: ready (user $(id -un), home $HOME)"
while :; do
    n=$((n + 1))
    echo "worker: task $n done"
    sleep 5 &
    wait $!
done
