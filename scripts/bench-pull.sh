#!/bin/bash
# Pull benchmark: `ostree pull` (2022.7) vs `keel repo pull` (release build), in one run, of the
# same Debian root filesystem from the same archive repository served by nginx on 127.0.0.1,
# each into an empty bare repository. Wall time and peak RSS from /usr/bin/time -v; prints a
# Markdown table with the ratio (ostree time / keel time).
#
#   scripts/bench-pull.sh                                   # needs root, nginx, ostree, time
#   KEEL_BIN=path/to/release/keel scripts/bench-pull.sh     # use an existing release build
#
# Input: the bookworm rootfs that scripts/bench-store.sh builds once with mmdebstrap and caches
# under $KEEL_BENCH_CACHE (default /work/bench-cache). The served repository is written once by
# `keel repo commit` in archive mode (input for both tools). Page cache: warm for both tools (the
# served repository is read completely before each timed pull); each client repo starts empty.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${KEEL_BENCH_CACHE:-/work/bench-cache}
ROOTFS=$CACHE/rootfs-bookworm-minbase-kernel-gcc
REF=bench/x86_64

for tool in nginx ostree /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing; apt-get install $(basename "$tool")" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "error: run as root (bare repos keep owners)" >&2; exit 1; }
[ -d "$ROOTFS" ] || { echo "error: $ROOTFS missing; run scripts/bench-store.sh once to build it" >&2; exit 1; }

if [ -n "${KEEL_BIN:-}" ]; then
    KEEL=$KEEL_BIN
else
    cargo build --release --locked -p keel >&2
    KEEL=${CARGO_TARGET_DIR:-target}/release/keel
fi

WORK=$(mktemp -d /var/tmp/keel-bench-pull.XXXXXX)
chmod 755 "$WORK"   # nginx workers run as www-data
NGINX_PID=
cleanup() {
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "writing the served archive repository" >&2
"$KEEL" repo --repo "$WORK/served" init --mode archive >&2
"$KEEL" repo --repo "$WORK/served" commit -b "$REF" -s bench "$ROOTFS" >/dev/null
"$KEEL" repo --repo "$WORK/served" summary --update >&2
OBJECTS=$(find "$WORK/served/objects" -type f | wc -l)
SERVED_SIZE=$(du -sm "$WORK/served/objects" | cut -f1)

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 256; }
http {
    access_log $WORK/nginx/access.log;
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp;
    uwsgi_temp_path $WORK/nginx/tmp;
    scgi_temp_path $WORK/nginx/tmp;
    sendfile on;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:$PORT;
        root $WORK/served;
        location / { }
    }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/config" 2>/dev/null && break; sleep 0.1; done
URL=http://127.0.0.1:$PORT/

warm() { tar -cf - "$@" 2>/dev/null | cat >/dev/null; }

declare -A SECS RSS GETS
measure() {
    local name=$1
    shift
    warm "$WORK/served"
    sync
    : >"$WORK/nginx/access.log"
    /usr/bin/time -v -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/stderr.txt" || {
        echo "error: $name failed:" >&2; cat "$WORK/stderr.txt" >&2; exit 1; }
    local wall
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/time.txt")
    SECS[$name]=$(echo "$wall" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }')
    RSS[$name]=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt")
    GETS[$name]=$(grep -c '"GET ' "$WORK/nginx/access.log" || true)
    echo "$name: ${SECS[$name]} s, $((RSS[$name] / 1024)) MiB peak RSS, ${GETS[$name]} GETs" >&2
}

ostree init --repo="$WORK/ostree-client" --mode=bare
ostree remote add --repo="$WORK/ostree-client" --no-gpg-verify origin "$URL"
measure ostree ostree pull --repo="$WORK/ostree-client" origin "$REF"

"$KEEL" repo --repo "$WORK/keel-client" init --mode bare >&2
"$KEEL" repo --repo "$WORK/keel-client" remote add --no-sign-verify origin "$URL" >&2
measure keel "$KEEL" repo --repo "$WORK/keel-client" pull origin "$REF"

O=$(ostree rev-parse --repo="$WORK/ostree-client" "origin:$REF")
K=$("$KEEL" repo --repo "$WORK/keel-client" rev-parse "origin:$REF")
[ "$O" = "$K" ] || { echo "error: ostree pulled $O, keel pulled $K" >&2; exit 1; }
ostree fsck --repo="$WORK/keel-client" >/dev/null 2>&1 || { echo "error: ostree fsck of keel's pull failed" >&2; exit 1; }

cores=$(nproc)
mem=$(awk '/MemTotal/ { printf "%d GiB", $2 / 1048576 }' /proc/meminfo)
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
echo
echo "Input: $ROOTFS ($OBJECTS objects, $SERVED_SIZE MiB in the archive repo) served by nginx $(nginx -v 2>&1 | sed 's/.*\///') on 127.0.0.1 (sendfile, keep-alive), pulled into an empty bare repo; $cores cores, $mem, $cpu; load average at end: $(cut -d' ' -f1-3 /proc/loadavg); ostree 2022.7 (8 requests in flight), keel (12 in flight); served repo page-cache warm for both."
echo
echo "| operation | ostree s | keel s | speed-up (ostree/keel) | ostree peak RSS | keel peak RSS | ostree GETs | keel GETs |"
echo "|---|---|---|---|---|---|---|---|"
ratio=$(awk -v o="${SECS[ostree]}" -v k="${SECS[keel]}" 'BEGIN { printf "%.2fx", o / k }')
echo "| pull archive → bare | ${SECS[ostree]} | ${SECS[keel]} | $ratio | $((RSS[ostree] / 1024)) MiB | $((RSS[keel] / 1024)) MiB | ${GETS[ostree]} | ${GETS[keel]} |"
echo
echo "Both pulled commit $K; ostree fsck passes on keel's result."
