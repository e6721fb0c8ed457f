#!/usr/bin/env bash
# Side-by-side benchmarks: supd beside supervisord 4.3.0 (PyPI), s6 and runit (Debian), horust
# (crates.io), tini (Debian) and dumb-init (PyPI) on this machine.
# Installs what it needs, builds supd in release mode, runs bench/peers.py first (supd beside
# every peer, each as PID 1 of its own namespace, every figure read from outside; to
# bench/results-peers.md, the README's headline table) and bench/spawn.py (supd's spawning
# beside a posix_spawn loop, the floor; to bench/results-spawn.md; SUPD_BEFORE18=DIR adds a
# column for an earlier build), then bench/health.py (probes and
# /health, to bench/results-health.md) and bench/logs.py (1 GiB of output into a file and
# through the passthrough, to bench/results-logs.md; needs 2 GiB free in /var/tmp) and
# bench/gpu.py (detection and polling cost, to bench/results-gpu.md) and bench/live.py (reload
# and /metrics with 200 programs, to bench/results-live.md), bench/rpc.py (supervisord's XML-RPC
# and event listeners served by supd and by supervisord, to bench/results-rpc.md; SUPD_BEFORE16=DIR
# adds what issue 16 added to supd's binary and memory), bench/events.py (/events followers
# during a restart storm, to bench/results-events.md), bench/top.py (supd's CPU while `supctl top`
# watches 200 programs, to bench/results-top.md), bench/dashboard.py (the dashboard's weight and
# paint in headless Chromium, supd's CPU while it is open; to bench/results-dashboard.md),
# bench/limits.py (an allocation past memory_max to the OOM kill in status; to
# bench/results-limits.md) and bench/hostile.py (PID 1 under
# idle and slow connections, restart churn, a 10,000-program dependency chain, wake-ups after
# a scrape, a SIGSTOPped program; to bench/results-hostile.md; SUPD_BEFORE=DIR adds a column
# for an earlier build). Takes about half an hour.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

for pkg in tini wrk tmux chromium s6 runit; do
    command -v "$pkg" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"; }
done
if [ ! -x "$here/.venv/bin/supervisord" ]; then
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install -q supervisor==4.3.0
fi
"$here/.venv/bin/python" -c 'import playwright' 2>/dev/null || "$here/.venv/bin/pip" install -q playwright==1.65.3
[ -x "$here/.venv/bin/dumb-init" ] || "$here/.venv/bin/pip" install -q dumb-init
command -v horust >/dev/null || [ -x "$HOME/.cargo/bin/horust" ] || cargo install --locked horust
cargo build --release --locked --manifest-path "$root/Cargo.toml"
"$here/.venv/bin/python" "$here/peers.py" --supd "$root/target/release" --out "$here/results-peers.md"
"$here/.venv/bin/python" "$here/spawn.py" --supd "$root/target/release" ${SUPD_BEFORE18:+--before "$SUPD_BEFORE18"} \
    --out "$here/results-spawn.md"
"$here/.venv/bin/python" "$here/health.py" --supd "$root/target/release" --out "$here/results-health.md"
"$here/.venv/bin/python" "$here/logs.py" --supd "$root/target/release" --out "$here/results-logs.md"
# The GPU benchmark polls fake GPUs, which only a `fake-gpu` build reads.
cargo build --release --locked --features fake-gpu --manifest-path "$root/Cargo.toml" --target-dir "$root/target/fake-gpu"
"$here/.venv/bin/python" "$here/gpu.py" --supd "$root/target/fake-gpu/release" --out "$here/results-gpu.md"
"$here/.venv/bin/python" "$here/live.py" --supd "$root/target/release" --out "$here/results-live.md"
"$here/.venv/bin/python" "$here/rpc.py" --supd "$root/target/release" ${SUPD_BEFORE16:+--before "$SUPD_BEFORE16"} \
    --out "$here/results-rpc.md"
"$here/.venv/bin/python" "$here/events.py" --supd "$root/target/release" --out "$here/results-events.md"
"$here/.venv/bin/python" "$here/top.py" --supd "$root/target/release" --out "$here/results-top.md"
"$here/.venv/bin/python" "$here/dashboard.py" --supd "$root/target/release" --out "$here/results-dashboard.md"
"$here/.venv/bin/python" "$here/limits.py" --supd "$root/target/release" --out "$here/results-limits.md"
"$here/.venv/bin/python" "$here/hostile.py" --supd "$root/target/release" ${SUPD_BEFORE:+--before "$SUPD_BEFORE"} \
    --out "$here/results-hostile.md"
