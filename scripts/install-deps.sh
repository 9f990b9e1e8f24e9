#!/bin/bash
# Install what Keel's build and tests need on Debian 12, then check that it is all there.
# Sourced by scripts/test.sh and scripts/main-job.sh; runs on its own too.
#   KEEL_DEPS_LIST  the package list (default scripts/debian-packages.txt: a package a line, then
#                   the commands and files it must provide)
# Every listed package is installed in ONE apt transaction (so no listed package can remove
# another), then every package, command and file is checked again; what is still missing is
# named with the command that fixes it. A package that something else removed since the last
# run is installed again.
set -euo pipefail
keel_deps_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
keel_deps_list=${KEEL_DEPS_LIST:-$keel_deps_here/debian-packages.txt}

if [ "$(id -u)" != 0 ]; then
    echo "error: run as root (it installs Debian packages with apt-get)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "error: apt-get not found: Keel's scripts expect Debian 12 (bookworm)" >&2
    exit 1
fi
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

keel_deps_packages=()
keel_deps_checks=()
while read -r line; do
    line=${line%%#*}
    read -r -a words <<<"$line"
    [ ${#words[@]} -gt 0 ] || continue
    keel_deps_packages+=("${words[0]}")
    for w in "${words[@]:1}"; do keel_deps_checks+=("${words[0]}:$w"); done
done <"$keel_deps_list"

# QEMU's packages must all come from one Debian suite: bookworm's qemu-system-x86 (7.2) cannot be
# installed beside bookworm-backports' qemu-utils (10.x, which some machines come with: it Breaks
# qemu-system-common < 8), and an install that resolves that by removing qemu-utils leaves the
# image step without qemu-img. On bookworm, take the whole QEMU set from backports.
keel_deps_apt_sources() {
    [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = bookworm ] || return 0
    local changed=1
    local src=/etc/apt/sources.list.d/keel-bookworm-backports.sources
    local pin=/etc/apt/preferences.d/keel-qemu
    if ! grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' \
            'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >"$src"
        echo "install-deps: added bookworm-backports ($src) for QEMU"
        changed=0
    fi
    if [ ! -f "$pin" ]; then
        printf '%s\n' '# Keel: the whole QEMU set from one suite (scripts/install-deps.sh)' \
            'Package: src:qemu src:seabios src:brltty' 'Pin: release n=bookworm-backports' \
            'Pin-Priority: 990' >"$pin"
        echo "install-deps: pinned QEMU's packages to bookworm-backports ($pin)"
        changed=0
    fi
    return $changed
}

keel_deps_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# The checks that are not package states: commands on PATH and files.
keel_deps_missing_checks() {
    local c pkg what
    for c in "${keel_deps_checks[@]}"; do
        pkg=${c%%:*} what=${c#*:}
        case $what in
        /*) [ -e "$what" ] || echo "$pkg:$what" ;;
        *) command -v "$what" >/dev/null || echo "$pkg:$what" ;;
        esac
    done
}

keel_deps_need_update=1
keel_deps_apt_sources && keel_deps_need_update=0
keel_deps_missing=()
for p in "${keel_deps_packages[@]}"; do
    keel_deps_installed "$p" || keel_deps_missing+=("$p")
done
mapfile -t keel_deps_broken < <(keel_deps_missing_checks)
for c in "${keel_deps_broken[@]}"; do keel_deps_missing+=("${c%%:*}"); done

if [ ${#keel_deps_missing[@]} -gt 0 ]; then
    echo "install-deps: installing or repairing: $(printf '%s\n' "${keel_deps_missing[@]}" | sort -u | tr '\n' ' ')"
    export DEBIAN_FRONTEND=noninteractive
    keel_deps_need_update=0
fi
if [ $keel_deps_need_update = 0 ]; then
    apt-get update -q >/dev/null || echo "install-deps: warning: apt-get update failed" >&2
fi
if [ ${#keel_deps_missing[@]} -gt 0 ]; then
    # The whole list in one transaction: apt must find a state in which every listed package is
    # installed, or change nothing. Packages whose files went missing are reinstalled.
    mapfile -t keel_deps_reinstall < <(for c in "${keel_deps_broken[@]}"; do
        p=${c%%:*}; keel_deps_installed "$p" && echo "$p"; done | sort -u)
    if ! apt-get install -y -q --no-install-recommends "${keel_deps_packages[@]}" >/tmp/keel-install-deps.log 2>&1; then
        tail -n 20 /tmp/keel-install-deps.log >&2
        echo "install-deps: apt-get install failed (full log: /tmp/keel-install-deps.log)" >&2
    fi
    if [ ${#keel_deps_reinstall[@]} -gt 0 ]; then
        apt-get install -y -q --no-install-recommends --reinstall "${keel_deps_reinstall[@]}" \
            >>/tmp/keel-install-deps.log 2>&1 || true
    fi
fi

# Check again, whatever happened above.
keel_deps_fail=0
for p in "${keel_deps_packages[@]}"; do
    if ! keel_deps_installed "$p"; then
        echo "error: Debian package $p is not installed; fix: apt-get install $p" >&2
        keel_deps_fail=1
    fi
done
while read -r c; do
    [ -n "$c" ] || continue
    echo "error: ${c#*:} is missing (from Debian package ${c%%:*}); fix: apt-get install --reinstall ${c%%:*}" >&2
    keel_deps_fail=1
done < <(keel_deps_missing_checks)
if [ $keel_deps_fail != 0 ]; then
    echo "install-deps: the machine still lacks what is named above ($keel_deps_list)" >&2
    exit 1
fi

if ! command -v cargo >/dev/null; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    elif [ -z "${KEEL_DEPS_NO_CARGO:-}" ]; then
        echo "error: cargo (Rust >= 1.85) not found. Install it with rustup: https://rustup.rs, then re-run" >&2
        exit 1
    fi
fi
# Tools from crates.io that Debian 12 lacks, built with cargo when KEEL_DEPS_DOCS=1 (the test suite
# and scripts/docs.sh set it): mdBook builds the documentation site. Pinned, and checked after.
keel_mdbook_version=0.5.4
if [ -n "${KEEL_DEPS_DOCS:-}" ]; then
    if [ "$(mdbook --version 2>/dev/null)" != "mdbook v$keel_mdbook_version" ]; then
        echo "install-deps: building mdbook $keel_mdbook_version with cargo (a few minutes, once)"
        cargo install --locked --quiet mdbook --version "$keel_mdbook_version" \
            --no-default-features --features search >>/tmp/keel-install-deps.log 2>&1 || true
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if [ "$(mdbook --version 2>/dev/null)" != "mdbook v$keel_mdbook_version" ]; then
        echo "error: mdbook $keel_mdbook_version is missing (see /tmp/keel-install-deps.log); fix:" \
            "cargo install --locked mdbook --version $keel_mdbook_version" >&2
        exit 1
    fi
fi
echo "install-deps: ${#keel_deps_packages[@]} packages and ${#keel_deps_checks[@]} commands and files present"
