#!/bin/bash
# Boot-time benchmarks of the default OS image under QEMU. Time to ready = QEMU start until SSH
# accepts the run's key for `core` and `systemctl is-system-running --wait` returns. Under TCG
# single boots vary by several seconds, so the figures are medians of several runs in one
# invocation; every run's times are printed too.
#
#   scripts/bench-boot.sh [baseline]   (default) issue 13, crates/vm/tests/bench_boot.rs: the
#       baseline is the image's own commit (same Debian packages, kernel, dracut initramfs,
#       systemd-boot, QEMU flags and firmware) booted the plain way from a plain ext4 root, no
#       Keel units, no ostree=/Ignition kargs (crates/vm/src/baseline.rs builds that disk once).
#       Each run boots the baseline (fresh overlay), then a fresh Keel VM's first (provisioning)
#       boot with a minimal Ignition config (the SSH key for core), then that VM's second boot.
#       Prints "boot run N: ..." lines, "boot medians: ..." with both ratios and the goals
#       (second <= 1.15 x baseline, first <= 1.15 x second), the phases of `systemd-analyze time`,
#       and `systemd-analyze time`, `critical-chain` and `blame` of the last run's three boots.
#   scripts/bench-boot.sh basic        issue 7, item 3: first boot against second boot of the
#       VM suite's basic test (crates/vm/tests/vm_suite.rs: Ignition fetches a container archive
#       over HTTP, users, units), goal: first at most 1.20 x second.
#
# Environment:
#   KEEL_BENCH_RUNS     runs (default 5)
#   KEEL_VMTEST_IMAGE   image to boot (default: build it with scripts/vmtest.sh first, which runs
#                       only the basic test of the VM test file vm_suite; KEEL_VMTEST_FILES takes
#                       test file names such as vm_suite)
#   KEEL_VMTEST_DIR     work directory of scripts/vmtest.sh (default /var/tmp/keel-vmtest)
#   KEEL_VMTEST_REPO    compose repository holding the image's commit (default: repo next to it)
#   KEEL_BENCH_REV      ref or commit the image was built from (default keel/stable/x86_64)
#   KEEL_BIN            keel binary that checks the commit out for the baseline (default: the
#                       release build, made if needed)
#   KEEL_BENCH_LOG      copy of the baseline benchmark's output (default target/bench-boot.log)
# Needs root (the baseline's files keep the tree's owners; composing the image). Run it on an
# otherwise idle machine: a second guest on the same cores slows some boots more than others.
# Example:
#   sudo KEEL_VMTEST_IMAGE=/var/tmp/keel-vmtest/keel.qcow2 scripts/bench-boot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-baseline}
runs=${KEEL_BENCH_RUNS:-5}
work=${KEEL_VMTEST_DIR:-/var/tmp/keel-vmtest}
target=${CARGO_TARGET_DIR:-$PWD/target}
case $mode in
baseline | basic) ;;
*)
    echo "usage: $0 [baseline|basic]" >&2
    exit 2
    ;;
esac
if [ -z "${KEEL_VMTEST_IMAGE:-}" ]; then
    # Builds the image; its own test run is not counted.
    KEEL_VMTEST_ONLY=basic KEEL_VMTEST_FILES=vm_suite scripts/vmtest.sh >&2
    export KEEL_VMTEST_IMAGE=$work/keel.qcow2
fi

if [ "$mode" = baseline ]; then
    if [ -z "${KEEL_BIN:-}" ]; then
        cargo build --locked --release -q -p keel >&2
        export KEEL_BIN=$target/release/keel
    fi
    log=${KEEL_BENCH_LOG:-$target/bench-boot.log}
    mkdir -p "$(dirname "$log")"
    echo "boot benchmark: $runs runs of baseline, Keel first and second boot of $KEEL_VMTEST_IMAGE ($(date -u '+%F %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg))" | tee "$log"
    KEEL_BENCH_BOOT=1 KEEL_BENCH_RUNS=$runs \
        cargo test --locked -q -p keel-vm --test bench_boot bench_boot -- --nocapture --test-threads=1 2>&1 |
        tee -a "$log" | sed -u -E '/^(running [0-9]+ test|test result:|test bench_boot|\.$)/d' || {
        echo "the boot benchmark failed; full output in $log" >&2
        exit 1
    }
    echo "full output: $log"
    exit 0
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for i in $(seq 1 "$runs"); do
    log=$(KEEL_VMTEST_ONLY=basic cargo test --locked -q -p keel-vm --test vm_suite -- --nocapture 2>&1) || {
        echo "$log" >&2
        echo "run $i failed" >&2
        exit 1
    }
    line=$(grep -m1 '^boot timing:' <<<"$log")
    echo "run $i: ${line#boot timing: }"
    # "boot timing: first 40.2 s, second 35.0 s, ratio 1.15 (...)"
    awk '{gsub(",", ""); print $4, $7, $10}' <<<"$line" >>"$results"
done
python3 - "$results" <<'EOF'
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
first, second, ratio = (statistics.median(c) for c in zip(*rows))
print(f"median of {len(rows)} runs: first boot {first:.1f} s, second boot {second:.1f} s, "
      f"ratio {ratio:.2f} (goal <= 1.20: {'met' if ratio <= 1.2 else 'NOT met'})")
EOF
