#!/bin/bash
# Install what Keel's build and tests need on Debian 12, or stop naming what is missing.
# Debian packages come from scripts/debian-packages.txt (one per line, '#' comments).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if [ "$(id -u)" != 0 ]; then
    echo "error: run as root (it installs Debian packages with apt-get)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "error: apt-get not found: Keel's scripts expect Debian 12 (bookworm)" >&2
    exit 1
fi

mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/debian-packages.txt" | grep -v '^$')
missing=()
for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "error: cargo (Rust >= 1.85) not found. Install it with rustup: https://rustup.rs, then re-run" >&2
        exit 1
    fi
fi
