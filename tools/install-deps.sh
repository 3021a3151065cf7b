#!/usr/bin/env bash
# Installs the Debian packages berth needs (idempotent: only what is missing).
# Later capabilities add their packages to PACKAGES below.
set -euo pipefail

PACKAGES=(
    runc            # the OCI runtime berth-shim drives
    busybox-static  # test images are built from it
    ca-certificates
    curl            # used by the set-up checks and handy for the API socket
    skopeo          # third-party OCI tool the image tests check interoperability with
    umoci           # ditto
    docker-registry # the registry the registry client's tests push to and pull from
    apache2-utils   # htpasswd: bcrypt users for the registry's basic-auth tests
    openssl         # the registry TLS tests make a CA and a server certificate
    containernetworking-plugins # CNI plugins (bridge, host-local, loopback, portmap) in /usr/lib/cni
    iptables        # the bridge (ipMasq) and portmap plugins program nat rules with it
    iproute2        # ip: berth repairs a bridge's address with it; the network tests use it
    libc6-dev       # glibc's static libc.a: tools/build-shim.sh links the shim statically
    containerd      # benchmarks only: berth-bench pull compares against containerd's ctr images pull
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
        SUDO="sudo"
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "install-deps: cargo is missing; install a recent stable Rust toolchain (1.85 or newer; tested with 1.95) first" >&2
    exit 1
fi
