#!/bin/bash
# Sourced by scripts/test.sh and scripts/vmtest.sh. A test that cannot run here calls
# keel_testsupport::skip (keel_utils::skip_log), which appends `SKIP: <test>: <reason>` to
# $KEEL_SKIP_LOG. `skip_table` lists the skips after the time table; `skip_check` fails
# when CI=true and a skip matches no pattern of scripts/ci-allowed-skips.
: "${KEEL_SKIP_LOG:=$(mktemp /tmp/keel-skips.XXXXXX)}"
export KEEL_SKIP_LOG
keel_allowed_skips=$(dirname "${BASH_SOURCE[0]}")/ci-allowed-skips

# The distinct skips (without `SKIP: `) that scripts/ci-allowed-skips does not allow.
skips_not_allowed() {
    [ -s "$KEEL_SKIP_LOG" ] || return 0
    sed 's/^SKIP: //' "$KEEL_SKIP_LOG" | sort -u |
        grep -Ev -f <(grep -Ev '^[[:space:]]*(#|$)' "$keel_allowed_skips") || true
}

skip_table() {
    [ -s "$KEEL_SKIP_LOG" ] || return 0
    local bad
    bad=$(skips_not_allowed)
    echo
    echo "== skipped tests (did not run; * = not allowed in CI, see scripts/ci-allowed-skips)"
    sed 's/^SKIP: //' "$KEEL_SKIP_LOG" | sort -u | while IFS= read -r line; do
        if grep -qxF -- "$line" <<<"$bad"; then echo "* $line"; else echo "  $line"; fi
    done
}

# Fails in CI (CI=true) when a test skipped that must run there.
skip_check() {
    local bad
    bad=$(skips_not_allowed)
    [ -n "$bad" ] || return 0
    if [ "${CI:-}" != true ]; then
        echo "$(wc -l <<<"$bad") skipped test(s) would fail a CI run (CI=true); see the list at the end"
        return 0
    fi
    echo "error: CI=true and these tests skipped; run as root with scripts/install-deps.sh's" \
        "packages, or allow the skip in scripts/ci-allowed-skips with the reason:" >&2
    sed 's/^/  /' <<<"$bad" >&2
    return 1
}
