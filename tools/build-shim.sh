#!/usr/bin/env bash
# Builds the berth-shim that berthd runs, one per running container, and puts it where
# berthd looks for it: next to berthd, in target/<profile>/ (default: release).
#
#   tools/build-shim.sh [release|debug]
#
# The shim is built with the `shim` profile (optimised for size, LTO; see Cargo.toml)
# and linked statically and not as a PIE: -C target-feature=+crt-static
# -C relocation-model=static. These are rustc flags of the final binary only (cargo
# rustc), so nothing else is linked statically; proc-macros and build scripts are not
# affected. glibc's static libc.a is needed (Debian: libc6-dev, with gcc).
#
# Run it after `cargo build`: a later `cargo build` of the shim package puts the
# ordinary (dynamic) shim back in target/<profile>/, which works the same but keeps
# ~1.3 MB more resident per shim.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-release}"
case "$profile" in
    release | debug) ;;
    *)
        echo "usage: tools/build-shim.sh [release|debug]" >&2
        exit 2
        ;;
esac
cargo rustc --profile shim -p berth-shim --bin berth-shim -- \
    -C target-feature=+crt-static -C relocation-model=static
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target/$profile"
# Replace, not overwrite in place: a running shim keeps its (old) executable.
install -m 0755 "$target/shim/berth-shim" "$target/$profile/.berth-shim.new"
mv -f "$target/$profile/.berth-shim.new" "$target/$profile/berth-shim"
echo "build-shim: $target/$profile/berth-shim (static, size-optimised)" >&2
