#!/bin/sh
# A program that crashes a moment after starting, to show BACKOFF and then FATAL.
echo "flaky: starting, about to fail" >&2
sleep 0.3
exit 3
