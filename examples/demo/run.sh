#!/bin/sh
# Builds supd and runs the demo stack, as PID 1 of a new PID namespace when root.
# In another shell: target/release/supctl -s /tmp/supd-demo.sock status
#                   curl -s 127.0.0.1:9001/health
# Stop with Ctrl-C (supd shuts the stack down in reverse priority order).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cargo build --release --locked --manifest-path "$root/Cargo.toml"
export SUPD_DEMO_DIR="$here"
if [ "$(id -u)" = 0 ]; then
    exec unshare --pid --fork --mount-proc --kill-child "$root/target/release/supd" -c "$here/supd.toml"
fi
echo "not root: running supd as a child subreaper instead of PID 1" >&2
exec "$root/target/release/supd" -c "$here/supd.toml"
