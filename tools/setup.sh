#!/usr/bin/env bash
# Fresh machine → running daemon: installs what is missing, builds berth (release; the
# shim with tools/build-shim.sh), and runs berthd in the foreground on the default
# embedded journal and unix socket (/var/lib/berth, /run/berth/berth.sock). Extra
# arguments go to berthd.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cargo build --release --bins
# The shim berthd runs (next to it): size-optimised and statically linked.
tools/build-shim.sh release
echo "setup: starting berthd (Ctrl-C or SIGTERM stops it cleanly); try: target/release/berth version" >&2
exec target/release/berthd "$@"
