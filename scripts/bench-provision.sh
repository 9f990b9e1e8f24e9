#!/bin/bash
# Provisioning benchmark: Ignition 2.14 (Debian) vs keel (release build) applying the same config
# (2,000 files, 200 directories, 100 links, 20 enabled units) into fresh scratch roots, in one run.
# Both run the fetch-offline and files stages as separate processes, as at boot; wall time of
# the two stages together, best of $RUNS runs each, alternating tools. Two scratch media: the
# machine's disk (where creating an inode costs about a millisecond here, for both tools alike)
# and a tmpfs (what the tools themselves cost). Prints a Markdown table.
#
#   scripts/bench-provision.sh                       # builds keel --release first
#   KEEL_BIN=target/release/keel scripts/bench-provision.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
IGN=/usr/lib/dracut/modules.d/30ignition/ignition
[ -x "$IGN" ] || { echo "error: Ignition 2.14 missing; apt-get install ignition" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "error: run as root (files are chowned)" >&2; exit 1; }
if [ -z "${KEEL_BIN:-}" ]; then
    cargo build --release -p keel >&2
    KEEL_BIN=${CARGO_TARGET_DIR:-target}/release/keel
fi

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 - "$W/bench.ign" <<'EOF'
import json, sys, base64
files = []
for i in range(2000):
    body = ("line %d of file %d\n" % (i, i)) * (1 + i % 40)
    src = "data:;base64," + base64.b64encode(body.encode()).decode() if i % 2 else "data:," + body.replace("\n", "%0A").replace(" ", "%20")
    files.append({"path": "/srv/d%03d/f%04d.conf" % (i % 200, i), "mode": 0o644 if i % 3 else 0o600, "contents": {"source": src}})
dirs = [{"path": "/srv/d%03d" % d, "mode": 0o755 if d % 2 else 0o750} for d in range(200)]
links = [{"path": "/srv/links/l%03d" % i, "target": "/srv/d%03d/f%04d.conf" % (i % 200, i)} for i in range(100)]
unit = "[Unit]\nDescription=bench %d\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n"
units = [{"name": "bench%02d.service" % i, "enabled": True, "contents": unit % i} for i in range(20)]
cfg = {"ignition": {"version": "3.3.0"}, "storage": {"files": files, "directories": dirs, "links": links}, "systemd": {"units": units}}
json.dump(cfg, open(sys.argv[1], "w"))
EOF

STUBS=$W/stubs; mkdir -p "$STUBS"
printf '#!/bin/sh\ncat >/dev/null; exit 0\n' > "$STUBS/setfiles"; chmod +x "$STUBS/setfiles"

now() { date +%s%N; }
fresh_root() {  # $1 = root; the same seed for both tools
    rm -rf "$1"; mkdir -p "$1/etc/systemd/system" "$1/etc/selinux"
    echo SELINUXTYPE=targeted > "$1/etc/selinux/config"
    sync
}
run_ignition() {  # $1 = scratch dir
    local r=$1/ign-root s=$1/ign-run t0 t1
    fresh_root "$r"; rm -rf "$s"; mkdir -p "$s"
    t0=$(now)
    for st in fetch-offline files; do
        PATH="$STUBS:$PATH" IGNITION_CONFIG_FILE="$W/bench.ign" IGNITION_SYSTEM_CONFIG_DIR="$s/sysconf" \
            "$IGN" -platform file -stage $st -root "$r" -config-cache "$s/ignition.json" \
            -state-file "$s/state" -neednet "$s/neednet" -log-to-stdout > "$s/$st.log" 2>&1
    done
    t1=$(now); echo $(( (t1 - t0) / 1000000 ))
}
run_keel() {  # $1 = scratch dir
    local r=$1/keel-root s=$1/keel-run t0 t1
    fresh_root "$r"; rm -rf "$s"; mkdir -p "$s"
    t0=$(now)
    for st in fetch-offline files; do
        "$KEEL_BIN" ignition stage $st --root "$r" --platform file --config-file "$W/bench.ign" \
            --config-cache "$s/ignition.json" --state-file "$s/state" --neednet "$s/neednet" \
            --system-config-dir "$s/sysconf" --kmsg "$s/kmsg"
    done
    t1=$(now); echo $(( (t1 - t0) / 1000000 ))
}
bench() {  # $1 = label, $2 = scratch dir
    local best_ign= best_keel= i k n_ign n_keel
    for _ in $(seq "$RUNS"); do
        i=$(run_ignition "$2"); k=$(run_keel "$2")
        if [ -z "$best_ign" ] || [ "$i" -lt "$best_ign" ]; then best_ign=$i; fi
        if [ -z "$best_keel" ] || [ "$k" -lt "$best_keel" ]; then best_keel=$k; fi
    done
    n_ign=$(find "$2/ign-root/srv" | wc -l); n_keel=$(find "$2/keel-root/srv" | wc -l)
    [ "$n_ign" = "$n_keel" ] || { echo "error: trees differ: $n_ign vs $n_keel nodes under /srv" >&2; exit 1; }
    echo "| $1 | ${best_ign} ms | ${best_keel} ms | $(python3 -c "print(f'{$best_ign / max($best_keel, 1):.1f}x')") |"
}

mkdir -p "$W/disk" "$W/tmpfs"
mount -t tmpfs -o size=1g keel-bench "$W/tmpfs"
trap 'umount "$W/tmpfs"; rm -rf "$W"' EXIT
echo "| scratch root on | Ignition 2.14 (Debian) | keel | speed-up |"
echo "|---|---|---|---|"
bench "tmpfs" "$W/tmpfs"
bench "disk ($(findmnt -no FSTYPE -T "$W/disk"))" "$W/disk"
