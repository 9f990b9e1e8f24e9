#!/bin/bash
# First boot against second boot of the same image (issue 7, item 3: the first boot, provisioning
# included, at most 20% longer). Each run is the VM suite's basic test (crates/vm/tests/vm_suite.rs):
# a fresh VM from the image boots with the test config (Ignition fetches a container archive over
# HTTP, users, units), is checked and powered off, then the same disk boots again. Time to ready =
# QEMU start until SSH accepts and `systemctl is-system-running --wait` returns. Under TCG single
# boots vary by several seconds (early-boot stalls, podman), so the figure is the median of
# several runs; every run's times are printed too.
#   KEEL_BENCH_RUNS     runs (default 5)
#   KEEL_VMTEST_IMAGE   image to boot (default: build it with scripts/vmtest.sh first)
#   KEEL_VMTEST_DIR     work directory of scripts/vmtest.sh (default /var/tmp/keel-vmtest)
# Needs root when the image is built (compose). Run it on an otherwise idle machine: a second
# guest on the same cores slows one boot more than the other. Example:
#   sudo scripts/bench-boot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${KEEL_BENCH_RUNS:-5}
work=${KEEL_VMTEST_DIR:-/var/tmp/keel-vmtest}
if [ -z "${KEEL_VMTEST_IMAGE:-}" ]; then
    # Builds the image; its own test run is not counted.
    KEEL_VMTEST_ONLY=basic KEEL_VMTEST_FILES="--test vm_suite" scripts/vmtest.sh >&2
    export KEEL_VMTEST_IMAGE=$work/keel.qcow2
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
