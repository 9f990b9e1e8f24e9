#!/bin/bash
# Power cuts by the hundred (issue 13): the power-cut soak (crates/vm/tests/vm_powercut.rs) with
# KEEL_VMTEST_SOAK_CUTS cuts (default 200), spread evenly over the four kinds of operation
# (staging, finalization, a swap without staging, rollback) and, within each kind, over the
# whole time the operation takes (stratified random moments). Each cut SIGKILLs QEMU; the next
# boot checks what systemd-boot would boot before any keel command, then after `keel status`
# repaired, and every /var file synced before a cut. Prints the soak's summary line
# ("power-cut soak: N cuts (...), M inconsistent, T s") and the seed to replay it.
#   KEEL_VMTEST_SOAK_CUTS  cuts (default 200)
#   KEEL_VMTEST_SEED       replay a run
#   KEEL_VMTEST_IMAGE      image (default: build it with scripts/vmtest.sh first)
#   KEEL_VMTEST_DIR        work directory of scripts/vmtest.sh (default /var/tmp/keel-vmtest)
# Example:
#   sudo scripts/bench-power-cuts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=${KEEL_VMTEST_DIR:-/var/tmp/keel-vmtest}
export KEEL_VMTEST_SOAK_CUTS=${KEEL_VMTEST_SOAK_CUTS:-200}
if [ -z "${KEEL_VMTEST_IMAGE:-}" ]; then
    # Builds the image (and runs the soak once with its CI count, not counted here).
    KEEL_VMTEST_SOAK_CUTS=4 KEEL_VMTEST_FILES=vm_powercut scripts/vmtest.sh >&2
    export KEEL_VMTEST_IMAGE=$work/keel.qcow2
fi
export KEEL_BIN=${KEEL_BIN:-$PWD/target/release/keel}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked -q -p keel-vm --test vm_powercut -- --nocapture >"$log" 2>&1 || status=$?
grep -E '^power-cut soak:|FAIL' "$log" || true
if [ $status != 0 ]; then
    tail -n 60 "$log" >&2
    exit $status
fi
