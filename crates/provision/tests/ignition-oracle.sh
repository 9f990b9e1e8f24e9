#!/bin/bash
# Copied from the Keel project's shared reference (shared/reference/ignition-oracle.sh, written for this
# project): runs Debian bookworm's Ignition 2.14 offline into a scratch root.
# Differential oracle around Debian bookworm's Ignition 2.14 (package "ignition").
# usage: ign-oracle.sh MODE CONFIG.ign ROOTDIR
#   MODE=validate : ignition-validate only (exit 0 ok/warnings, 1 error)
#   MODE=apply    : ignition-apply semantics (files/dirs/links/units; NO passwd), --offline
#   MODE=stages   : fetch-offline -> fetch -> files (+ passwd, result file, presets)
# Never gives Ignition a non-loopback URL; apply mode uses --offline.
set -u
MODE=$1; CFG=$(readlink -f "$2"); ROOT=${3:-}
if [ -n "$ROOT" ]; then mkdir -p "$ROOT"; ROOT=$(readlink -f "$ROOT"); fi   # -root must be absolute (useradd/groupadd --root)
IGN=/usr/lib/dracut/modules.d/30ignition/ignition
STUBS=$(mktemp -d)
ln -s "$IGN" "$STUBS/ignition-apply"                       # argv[0] multicall
printf '#!/bin/sh\ncat >/dev/null; exit 0\n' > "$STUBS/setfiles"; chmod +x "$STUBS/setfiles"
printf '#!/bin/sh\necho "kargs: $*" >&2; exit 0\n' > "$STUBS/ignition-kargs-helper"; chmod +x "$STUBS/ignition-kargs-helper"
export PATH="$STUBS:$PATH"
case "$MODE" in
validate) exec ignition-validate "$CFG" ;;
apply)
  mkdir -p "$ROOT/etc/systemd/system"                      # `enabled:false` needs unit search paths
  container=1 ignition-apply --offline --root "$ROOT" "$CFG" ;;
stages)
  W=$(mktemp -d); mkdir -p "$ROOT/etc/selinux" "$ROOT/etc/systemd/system"
  [ -e "$ROOT/etc/selinux/config" ] || echo SELINUXTYPE=targeted > "$ROOT/etc/selinux/config"
  export IGNITION_CONFIG_FILE="$CFG" IGNITION_SYSTEM_CONFIG_DIR="$W/sysconf"
  for st in fetch-offline fetch files; do
    if [ "$st" = fetch ] && [ -e "$W/ignition.json" ]; then continue; fi   # same as ConditionPathExists=!/run/ignition.json
    "$IGN" -platform file -stage $st -root "$ROOT" -config-cache "$W/ignition.json" \
       -state-file "$W/state" -neednet "$W/neednet" -log-to-stdout > "$W/$st.log" 2>&1 || {
       rc=$?; grep -E 'CRITICAL|ERROR' "$W/$st.log" >&2; echo "stage $st failed rc=$rc (logs: $W)" >&2; exit $rc; }
  done
  echo "ok; rendered config cache: $W/ignition.json; logs: $W" ;;
*) echo "bad mode" >&2; exit 2 ;;
esac
