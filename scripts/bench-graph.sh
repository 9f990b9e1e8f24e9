#!/bin/bash
# Graph server load benchmark: `keel graph serve` (release build) with the real Fedora CoreOS
# stable updates metadata (crates/graph/tests/data) and a generated 150-release index with
# x86_64 and aarch64 commits, loaded by wrk on the same machine over loopback. Every request
# carries a different node_uuid (so the wariness hash runs per request).
#
#   scripts/bench-graph.sh                                   # needs wrk (apt-get install wrk)
#   KEEL_BIN=path/to/release/keel scripts/bench-graph.sh     # use an existing release build
#   WRK_ARGS="-t1 -c32 -d20s" scripts/bench-graph.sh         # the default load
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { echo "error: wrk is missing; apt-get install wrk" >&2; exit 1; }
if [ -n "${KEEL_BIN:-}" ]; then
    KEEL=$KEEL_BIN
else
    cargo build --release --locked -p keel >&2
    KEEL=${CARGO_TARGET_DIR:-target}/release/keel
fi

WORK=$(mktemp -d)
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

cp crates/graph/tests/data/fcos-updates-stable.json "$WORK/updates.json"
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
real = [r["version"] for r in json.load(open(f"{work}/updates.json"))["releases"]]
versions = []
for v in real:
    versions.append(v)
    for k in range(7):
        if len(versions) + len(real) - real.index(v) - 1 < 150:
            versions.append(f"{v}.{10 + k}")
assert len(versions) == 150
releases = [{"version": v, "commits": [{"architecture": "x86_64", "checksum": f"{i:064x}"},
                                       {"architecture": "aarch64", "checksum": f"a{i:063x}"}]}
            for i, v in enumerate(versions)]
json.dump({"stream": "stable", "releases": releases}, open(f"{work}/releases.json", "w"))
PY
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$WORK/graph.toml" <<TOML
listen = "127.0.0.1:$PORT"
[streams.stable]
release_index = "releases.json"
updates = "updates.json"
architectures = ["x86_64", "aarch64"]
TOML
cat > "$WORK/uuids.lua" <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", string.format("/v1/graph?basearch=x86_64&stream=stable&os_version=44.20260621.3.1&group=default&platform=metal&node_uuid=%032x", counter))
end
LUA
"$KEEL" graph serve --config "$WORK/graph.toml" &
SERVER=$!
URL="http://127.0.0.1:$PORT/v1/graph?basearch=x86_64&stream=stable"
for _ in $(seq 100); do curl -sf "$URL" >/dev/null && break; sleep 0.1; done
echo "response size: $(curl -sf "$URL" | wc -c) bytes; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2086
wrk ${WRK_ARGS:--t1 -c32 -d20s} --latency -s "$WORK/uuids.lua" "http://127.0.0.1:$PORT/"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
curl -sf "http://127.0.0.1:$PORT/metrics" | grep -E '^keel_graph_(requests_total|build_seconds|nodes)'
