#!/bin/bash
# Sourced by scripts/test.sh and scripts/vmtest.sh: `timed NAME COMMAND...` runs COMMAND and
# appends "NAME<TAB>SECONDS<TAB>ok|FAILED" to $KEEL_TIME_TABLE; `time_table` prints the rows
# as the table of where the suite's time went. `timed` returns COMMAND's status.
: "${KEEL_TIME_TABLE:=$(mktemp /tmp/keel-time-table.XXXXXX)}"
export KEEL_TIME_TABLE

timed() {
    local name=$1 start rc=0
    shift
    start=$(date +%s)
    echo "== $name"
    "$@" || rc=$?
    printf '%s\t%s\t%s\n' "$name" "$(($(date +%s) - start))" "$([ $rc = 0 ] && echo ok || echo FAILED)" >>"$KEEL_TIME_TABLE"
    return $rc
}

time_table() {
    [ -s "$KEEL_TIME_TABLE" ] || return 0
    echo
    echo "== where the time went"
    awk -F'\t' '{ printf "%-52s %6d s  %5.1f min  %s\n", $1, $2, $2 / 60, $3; total += $2 }
        END { printf "%-52s %6d s  %5.1f min\n", "total", total, total / 60 }' "$KEEL_TIME_TABLE"
}
