#!/bin/bash
# Sourced by scripts/test.sh and scripts/vmtest.sh. A test that cannot run here calls
# keel_testsupport::skip (keel_utils::skip_log), which appends `SKIP: <test>: <reason>` to
# $KEEL_SKIP_LOG. `skip_table` lists the skips after the time table; `skip_check` fails
# when a skip matches no pattern of scripts/ci-allowed-skips (a test that cannot run does not
# pass), unless KEEL_ALLOW_SKIPS=1 (a developer's machine that lacks something on purpose).
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
    echo "== skipped tests (did not run; * = fails the suite, see scripts/ci-allowed-skips)"
    sed 's/^SKIP: //' "$KEEL_SKIP_LOG" | sort -u | while IFS= read -r line; do
        if grep -qxF -- "$line" <<<"$bad"; then echo "* $line"; else echo "  $line"; fi
    done
}

# Fails when a test skipped that must run (every run, CI or not, unless KEEL_ALLOW_SKIPS=1).
skip_check() {
    local bad
    bad=$(skips_not_allowed)
    [ -n "$bad" ] || return 0
    if [ "${KEEL_ALLOW_SKIPS:-}" = 1 ]; then
        echo "$(wc -l <<<"$bad") skipped test(s) would fail the suite (KEEL_ALLOW_SKIPS=1 lets them); see the list at the end"
        return 0
    fi
    echo "error: these tests skipped, so they did not pass; run as root with" \
        "scripts/install-deps.sh's packages, or allow the skip in scripts/ci-allowed-skips" \
        "with the reason (KEEL_ALLOW_SKIPS=1 lets a developer's run pass anyway):" >&2
    sed 's/^/  /' <<<"$bad" >&2
    return 1
}
