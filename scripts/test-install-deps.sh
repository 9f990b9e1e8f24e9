#!/bin/bash
# Test of scripts/install-deps.sh on a fresh Debian 12 (a chroot made with mmdebstrap), in the
# state that broke the main job on a new machine: qemu-utils present at bookworm-backports'
# version (which Breaks bookworm's qemu-system-common) and the rest of the list absent. Then a
# package removed after the install, and a command file deleted, must both come back.
# Uses a subset of scripts/debian-packages.txt (the QEMU set and a few others, lines taken from
# the real list) so that it stays quick; run as root. Prints "N passed, N failed".
#   KEEL_DEPS_TEST_DIR  work directory (default /var/tmp/keel-deps-test, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${KEEL_DEPS_TEST_DIR:-/var/tmp/keel-deps-test}
root="$work/root"
passed=0 failed=0

cleanup() {
    umount -R "$root/proc" "$root/dev" "$root/sys" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cleanup
mkdir -p "$work"

check() { # name, command...
    local name=$1
    shift
    if "$@" >"$work/check.log" 2>&1; then
        echo "ok: $name"
        passed=$((passed + 1))
    else
        echo "FAILED: $name"
        sed 's/^/    /' "$work/check.log" | tail -n 30
        failed=$((failed + 1))
    fi
}

subset="qemu-system-x86 qemu-utils ovmf mtools dosfstools gdisk openssh-client xz-utils"
for p in $subset; do grep -E "^$p[[:space:]]" scripts/debian-packages.txt; done >"$work/list.txt"
[ "$(wc -l <"$work/list.txt")" = "$(wc -w <<<"$subset")" ] || {
    echo "error: scripts/debian-packages.txt lacks one of: $subset" >&2
    exit 1
}

echo "== a fresh Debian 12 with qemu-utils from bookworm-backports (mmdebstrap)"
start=$(date +%s)
# Backports is configured only while qemu-utils is installed, then removed again: the machine
# has backports' qemu-utils but no backports source, like the machines this project runs on.
mmdebstrap --variant=apt --quiet bookworm "$root" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" \
    --customize-hook='echo "deb http://deb.debian.org/debian bookworm-backports main" > "$1/etc/apt/sources.list.d/bp.list"' \
    --customize-hook='chroot "$1" apt-get update -q' \
    --customize-hook='chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-utils' \
    --customize-hook='rm "$1/etc/apt/sources.list.d/bp.list"; chroot "$1" apt-get update -q' \
    >"$work/mmdebstrap.log" 2>&1 || { tail -n 30 "$work/mmdebstrap.log"; exit 1; }
echo "chroot ready in $(($(date +%s) - start)) s: qemu-utils $(chroot "$root" dpkg-query -W -f='${Version}' qemu-utils)"
mkdir -p "$root/keel/scripts"
cp scripts/install-deps.sh "$root/keel/scripts/"
cp "$work/list.txt" "$root/keel/scripts/debian-packages.txt"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"

in_root() { chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root KEEL_DEPS_NO_CARGO=1 "$@"; }
commands_present() {
    local missing=0 w
    while read -r line; do
        line=${line%%#*}
        read -r -a words <<<"$line"
        for w in "${words[@]:1}"; do
            case $w in
            /*) [ -e "$root$w" ] || { echo "missing file $w"; missing=1; } ;;
            *) in_root sh -c "command -v $w" >/dev/null || { echo "missing command $w"; missing=1; } ;;
            esac
        done
    done <"$work/list.txt"
    return $missing
}

none_present() { ! commands_present >/dev/null; }
check "the list's commands are absent before the install" none_present
check "install-deps succeeds on the conflicting machine" in_root bash /keel/scripts/install-deps.sh
check "every listed command and file exists afterwards" commands_present
check "qemu-system-x86 and qemu-utils come from the same QEMU release" bash -c "
    a=\$(chroot $root dpkg-query -W -f='\${Version}' qemu-system-x86)
    b=\$(chroot $root dpkg-query -W -f='\${Version}' qemu-utils)
    echo \"qemu-system-x86 \$a, qemu-utils \$b\"; [ \"\$a\" = \"\$b\" ]"
check "qemu-img and qemu-system-x86_64 run" in_root sh -c "qemu-img --version && qemu-system-x86_64 --version"

echo "== a package removed by another install, and a command file deleted"
in_root env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q mtools >/dev/null
rm -f "$root/usr/sbin/sgdisk"
check "install-deps puts them back" in_root bash /keel/scripts/install-deps.sh
check "mcopy and sgdisk exist again" commands_present

echo "== what is still missing is named, with the command that fixes it"
echo "no-such-keel-package  no-such-command" >>"$root/keel/scripts/debian-packages.txt"
check "install-deps fails and names the package and the fix" bash -c "
    ! chroot $root env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root KEEL_DEPS_NO_CARGO=1 \
        bash /keel/scripts/install-deps.sh >$work/fail.log 2>&1
    cat $work/fail.log
    grep -q 'no-such-keel-package is not installed; fix: apt-get install no-such-keel-package' $work/fail.log &&
    grep -q 'no-such-command is missing (from Debian package no-such-keel-package)' $work/fail.log"

echo "install-deps: $passed passed, $failed failed"
[ "$failed" = 0 ]
