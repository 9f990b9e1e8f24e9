#!/bin/bash
# Keel's VM test step: compose the default OS (reused while the manifest, overlays and keel
# binary are unchanged), build the qcow2 image, and run the VM suite
# (crates/vm/tests/vm_suite.rs) against it. Needs root (compose, loop devices).
#   KEEL_VMTEST_DIR   work directory (default /var/tmp/keel-vmtest)
#   KEEL_VMTEST_ONLY  comma-separated test names (basic,bad-config)
#   KEEL_VMTEST_FILES VM test files to run (default: every crates/vm/tests/vm_*.rs; e.g.
#                     "vm_upgrade vm_fleet"), each timed in the suite's table
#   KEEL_VMTEST_KEEP  keep the VMs' directories (console logs, disks)
#   KEEL_ACCEL        kvm|tcg to skip the accelerator probe
#   KEEL_VMTEST_PROFILE  cargo profile of the keel binary put into the image (default release,
#                     as shipped; a debug keel makes the Ignition stages several times slower)
# `scripts/vmtest.sh --prepare` stops after the compose and the image (scripts/test.sh runs it
# before the unit tests, whose default-OS compose test then checks this compose instead of
# composing again); compose's output stays in $KEEL_VMTEST_DIR/compose.{out,err}.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/timing.sh
source scripts/skips.sh
[ -n "${KEEL_TIME_TABLE_OWNER:-}" ] || { export KEEL_TIME_TABLE_OWNER=vmtest; trap 'time_table; skip_table' EXIT; }
work=${KEEL_VMTEST_DIR:-/var/tmp/keel-vmtest}
target=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$work"

profile=${KEEL_VMTEST_PROFILE:-release}
timed "build keel ($profile) for the image" cargo build --locked --profile "$profile" -p keel
keel="$target/$([ "$profile" = dev ] && echo debug || echo "$profile")/keel"

key=$( { cat manifests/keel.toml; find manifests/overlays -type f -print0 2>/dev/null | sort -z | xargs -0r cat; cat "$keel"; } | sha256sum | cut -c1-16)
if [ "$(cat "$work/repo.key" 2>/dev/null)" != "$key" ] || [ ! -s "$work/compose.out" ]; then
    rm -rf "$work/repo" "$work/repo.key" "$work/image.key"
    timed "compose the default OS" "$keel" compose manifests/keel.toml --repo "$work/repo" \
        --cache /var/cache/keel-debs > >(tee "$work/compose.out") 2> >(tee "$work/compose.err" >&2)
    echo "$key" > "$work/repo.key"
else
    echo "compose: reusing $work/repo (key $key)"
fi

if [ "$(cat "$work/image.key" 2>/dev/null)" != "$key" ] || [ ! -f "$work/keel.qcow2" ]; then
    timed "image build (qcow2)" "$keel" image build --repo "$work/repo" --platform qemu -o "$work/keel.qcow2"
    echo "$key" > "$work/image.key"
else
    echo "image: reusing $work/keel.qcow2 (key $key)"
fi
[ "${1:-}" != --prepare ] || exit 0

# The provision crate's loop-device disk tests (RAID with mdadm, LUKS with cryptsetup) need md
# and device-mapper, which a host kernel may lack; vm_disks also runs them inside a guest, where
# Debian's kernel has both.
timed "build VM tests" cargo test --locked -p keel-vm --tests --no-run
disks_test=$(cargo test --locked -p keel-provision --test disks --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("executable") and m.get("target", {}).get("name") == "disks":
        print(m["executable"])')
strip -o "$work/provision-disks-test" "$disks_test"

files=${KEEL_VMTEST_FILES:-$(cd crates/vm/tests && ls vm_*.rs | sed 's/\.rs$//')}
failed=()
for f in $files; do
    KEEL_VMTEST_PROVISION_DISKS="$work/provision-disks-test" \
        KEEL_VMTEST_IMAGE="$work/keel.qcow2" KEEL_BIN="$keel" \
        KEEL_VMTEST_REPORT="$work/vmtest-report.json" \
        timed "VM tests: $f" cargo test --locked -p keel-vm --test "$f" -- --nocapture --test-threads=1 ||
        failed+=("$f")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "VM test files that failed: ${failed[*]}" >&2
    exit 1
fi
