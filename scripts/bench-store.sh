#!/bin/bash
# Store benchmark: ostree 2022.7 vs keel (release build) on the same Debian root filesystem, in
# one run: archive-mode commit, bare-mode commit, hardlink checkout; wall time and peak RSS from
# /usr/bin/time -v. Prints a Markdown table with ratios (ostree time / keel time).
#
#   scripts/bench-store.sh            # needs root, mmdebstrap, ostree, time (see debian-packages.txt)
#   KEEL_BIN=path/to/release/keel scripts/bench-store.sh    # use an existing release build
#   KEEL_BENCH_RUNS=3 scripts/bench-store.sh                # repeat, report medians (default 1)
#
# Input: a bookworm rootfs built once with mmdebstrap and cached under $KEEL_BENCH_CACHE
# (default /work/bench-cache). Page cache: every run starts WARM: the input tree (or, for
# checkouts, the repository) is read completely right before each timed run, for both tools.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${KEEL_BENCH_CACHE:-/work/bench-cache}
PACKAGES=linux-image-amd64,systemd,systemd-sysv,openssh-server,gcc,iproute2,curl,ca-certificates,kmod,udev
ROOTFS=$CACHE/rootfs-bookworm-minbase-kernel-gcc
TIMESTAMP=1767225600
REF=bench/x86_64
RUNS=${KEEL_BENCH_RUNS:-1}

for tool in mmdebstrap ostree /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing; apt-get install $(basename "$tool")" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "error: run as root (bare repos keep owners)" >&2; exit 1; }

if [ ! -d "$ROOTFS" ]; then
    echo "building $ROOTFS with mmdebstrap (once)" >&2
    rm -rf "$ROOTFS.tmp"
    mmdebstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS.tmp" >&2
    # /dev holds device nodes, which OSTree trees cannot contain (deployments mount devtmpfs).
    find "$ROOTFS.tmp/dev" -mindepth 1 -delete
    mv "$ROOTFS.tmp" "$ROOTFS"
fi

if [ -n "${KEEL_BIN:-}" ]; then
    KEEL=$KEEL_BIN   # an already built release binary
else
    cargo build --release --locked -p keel >&2
    KEEL=${CARGO_TARGET_DIR:-target}/release/keel
fi

WORK=$(mktemp -d /var/tmp/keel-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

warm() { tar -cf - "$@" 2>/dev/null | cat >/dev/null; }

declare -A SECS RSS
# measure NAME WARM_PATH CMD...: one timed run after warming WARM_PATH; output discarded. Appends
# the wall time to SECS[NAME] and keeps the largest peak RSS (KiB) in RSS[NAME].
measure() {
    local name=$1 warm_path=$2
    shift 2
    warm "$warm_path"
    sync
    /usr/bin/time -v -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/stderr.txt" || {
        echo "error: $name failed:" >&2; cat "$WORK/stderr.txt" >&2; exit 1; }
    local wall secs rss
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/time.txt")
    secs=$(echo "$wall" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }')
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt")
    SECS[$name]+="$secs "
    RSS[$name]=$(( rss > ${RSS[$name]:-0} ? rss : ${RSS[$name]:-0} ))
    echo "$name: $secs s, $((rss / 1024)) MiB peak RSS" >&2
}
median() { tr ' ' '\n' <<<"${SECS[$1]}" | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

files=$(find "$ROOTFS" -xdev -type f | wc -l)
entries=$(find "$ROOTFS" -xdev | wc -l)
size=$(du -sxm "$ROOTFS" | cut -f1)

declare -A SUM
for run in $(seq "$RUNS"); do
    R=$WORK/run$run
    mkdir -p "$R"
    for mode in archive bare; do
        ostree init --repo="$R/ostree-$mode" --mode="$mode"
        "$KEEL" repo --repo "$R/keel-$mode" init --mode "$mode"
        measure "ostree-commit-$mode" "$ROOTFS" \
            ostree commit --repo="$R/ostree-$mode" -b "$REF" -s bench --timestamp="@$TIMESTAMP" "$ROOTFS"
        measure "keel-commit-$mode" "$ROOTFS" \
            "$KEEL" repo --repo "$R/keel-$mode" commit -b "$REF" -s bench --timestamp "$TIMESTAMP" "$ROOTFS"
        SUM[ostree-$mode]=$(ostree rev-parse --repo="$R/ostree-$mode" "$REF")
        SUM[keel-$mode]=$("$KEEL" repo --repo "$R/keel-$mode" rev-parse "$REF")
    done
    measure ostree-checkout "$R/ostree-bare/objects" \
        ostree checkout --repo="$R/ostree-bare" -H "$REF" "$R/co-ostree"
    measure keel-checkout "$R/keel-bare/objects" \
        "$KEEL" repo --repo "$R/keel-bare" checkout "$REF" "$R/co-keel"
    rm -rf "$R"
done

same() { [ "${SUM[ostree-$1]}" = "${SUM[keel-$1]}" ] && echo "same commit checksum" || echo "DIFFERENT checksums ${SUM[ostree-$1]} vs ${SUM[keel-$1]}"; }
ratio() { awk -v o="$(median "ostree-$1")" -v k="$(median "keel-$1")" 'BEGIN { printf "%.2f", o / k }'; }
row() { printf '| %s | %s (%s) | %s (%s) | %s | %s MiB | %s MiB |\n' "$1" \
    "$(median "ostree-$2")" "${SECS[ostree-$2]% }" "$(median "keel-$2")" "${SECS[keel-$2]% }" "$(ratio "$2")x" \
    "$((RSS[ostree-$2] / 1024))" "$((RSS[keel-$2] / 1024))"; }

echo
echo "Input: $ROOTFS ($size MiB, $files files, $entries entries); $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); load average at end: $(cut -d' ' -f1-3 /proc/loadavg); $(ostree --version | sed -n "s/ *Version: '\(.*\)'/ostree \1/p"); page cache warm for both tools."
echo
echo "$RUNS run(s), interleaved; times are medians in seconds (every run in parentheses); RSS is the largest peak."
echo
echo "| operation | ostree s | keel s | speed-up (ostree/keel) | ostree peak RSS | keel peak RSS |"
echo "|---|---|---|---|---|---|"
row "commit, archive mode" commit-archive
row "commit, bare mode" commit-bare
row "hardlink checkout from bare (ostree -H)" checkout
echo
echo "archive: $(same archive); bare: $(same bare)"
