#!/bin/bash
# Speed of `keel upgrade` for a small update (issue 8, item 6): bytes downloaded and time to
# staged. v1 is the composed default OS (the VM test's compose repository); v2 is v1 with every
# file of a few Debian packages rebuilt (each file's content changes, as in a security update),
# committed on top of v1 and served by `keel repo serve` on 127.0.0.1. A directory sysroot
# deploys v1 from that remote, then `keel upgrade --json` (staged, as on a booted node) pulls
# and stages v2; its JSON gives bytes, objects, pull time and time to staged.
#   KEEL_BENCH_REPO      compose repository holding v1 (default: $KEEL_VMTEST_DIR/repo, or
#                        /var/tmp/keel-vmtest/repo; scripts/vmtest.sh makes it)
#   KEEL_BENCH_PACKAGES  packages whose files change (default: "sudo openssl libssl3:amd64")
#   KEEL_BENCH_DIR       work directory (default: a new one under /var/tmp, removed at the end)
#   KEEL_BIN             keel binary to use (default: build the release binary)
# Needs root (the checkout keeps file owners). Example:
#   sudo scripts/bench-upgrade.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${KEEL_BIN:-}" ]; then
    keel=$KEEL_BIN
else
    cargo build --locked --release -p keel >&2
    keel="${CARGO_TARGET_DIR:-$PWD/target}/release/keel"
fi
src=${KEEL_BENCH_REPO:-${KEEL_VMTEST_DIR:-/var/tmp/keel-vmtest}/repo}
packages=${KEEL_BENCH_PACKAGES:-sudo openssl libssl3:amd64}
ref=keel/stable/x86_64
[ -f "$src/config" ] || { echo "no repository at $src: run scripts/vmtest.sh (or set KEEL_BENCH_REPO)" >&2; exit 1; }
work=${KEEL_BENCH_DIR:-$(mktemp -d /var/tmp/keel-bench-upgrade.XXXXXX)}
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    [ -n "${KEEL_BENCH_DIR:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# The publisher: a copy of the compose repository (hardlinked), v2 derived from v1.
cp -al "$src" "$work/publish" 2>/dev/null || cp -a "$src" "$work/publish"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$keel" repo --repo "$work/publish" serve --port "$port" >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done

# The node: a directory sysroot following keel:<ref>, v1 deployed from the remote.
"$keel" init-sysroot --sysroot "$work/sysroot" >/dev/null
"$keel" repo --repo "$work/sysroot/ostree/repo" remote add --no-sign-verify keel "http://127.0.0.1:$port/"
"$keel" deploy "keel:$ref" --sysroot "$work/sysroot" --json > "$work/install.json"
d1=$(ls "$work/sysroot/ostree/deploy/keel/deploy" | grep -v '\.origin$' | head -n1)
sync

# v2: every file of the packages rebuilt, committed on top of v1.
v1=$("$keel" repo --repo "$work/publish" rev-parse "$ref")
"$keel" repo --repo "$work/publish" checkout "$v1" "$work/tree" >/dev/null
changed=0; changed_bytes=0
for p in $packages; do
    list="$work/tree/usr/lib/sysimage/dpkg/info/$p.list"
    [ -f "$list" ] || { echo "package $p is not in v1 ($list missing)" >&2; exit 1; }
    while read -r f; do
        case "$f" in /etc/*) rel="usr$f" ;; /usr/*) rel="${f#/}" ;; *) rel="usr$f" ;; esac
        t="$work/tree/$rel"
        [ -f "$t" ] && [ ! -L "$t" ] || continue
        cp -p "$t" "$t.new" && printf 'rebuilt for v2\n' >> "$t.new" && mv "$t.new" "$t"
        changed=$((changed + 1)); changed_bytes=$((changed_bytes + $(stat -c %s "$t")))
    done < "$list"
done
"$keel" repo --repo "$work/publish" commit -b "$ref" -s bench-v2 \
    --add-metadata-string version=bench-v2 "$work/tree" >/dev/null
"$keel" repo --repo "$work/publish" summary --update >/dev/null
rm -rf "$work/tree"
echo "v2: $changed files of [$packages] changed ($changed_bytes bytes uncompressed)" >&2

"$keel" upgrade --sysroot "$work/sysroot" --assume-booted "$d1" --json > "$work/upgrade.json"
python3 - "$work/install.json" "$work/upgrade.json" "$packages" <<'EOF'
import json, sys
install, up = (json.load(open(p)) for p in sys.argv[1:3])
mib = lambda b: b / 1048576
print(f"install v1 (full pull + deploy): {mib(install['bytes']):.1f} MiB, {install['objects']} objects, "
      f"pull {install['pull_ms']/1000:.1f} s, deployed after {install['total_ms']/1000:.1f} s")
print(f"upgrade v1 -> v2 ({sys.argv[3]} rebuilt): {up['result']}, {mib(up['bytes']):.2f} MiB "
      f"({up['bytes']} bytes), {up['objects']} objects, pull {up['pull_ms']/1000:.2f} s, "
      f"time to staged {up['total_ms']/1000:.2f} s")
EOF
