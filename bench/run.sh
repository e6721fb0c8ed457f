#!/usr/bin/env bash
# Side-by-side benchmark: supd, supervisord 4.3.0 (PyPI) and tini (Debian) on this machine.
# Installs what it needs (tini, a venv with supervisor), builds supd in release mode, runs
# bench/compare.py and writes the table to bench/results.md. Takes about a minute.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

command -v tini >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tini; }
if [ ! -x "$here/.venv/bin/supervisord" ]; then
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install -q supervisor==4.3.0
fi
cargo build --release --locked --manifest-path "$root/Cargo.toml"
"$here/.venv/bin/python" "$here/compare.py" --supd "$root/target/release" --out "$here/results.md" "$@"
