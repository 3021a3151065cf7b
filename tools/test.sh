#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds the binaries the
# end-to-end tests start, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all -- --check
fi
cargo build --workspace --bins
cargo test --workspace
# The shim as installed (tools/build-shim.sh: size profile, static link) must build and
# run containers too: put it next to the debug berthd and run the container tests again.
tools/build-shim.sh debug
cargo test -p berth-tests --test it containers
