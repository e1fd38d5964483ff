#!/usr/bin/env bash
# Install every build and test dependency of BKV from Debian's archive.
#
# Runs as root on Debian bookworm. It is idempotent: a second run changes nothing.
# libraft comes from bookworm-backports (0.22.x): bookworm's own 0.15 has a Raft
# commit-safety bug. The backports source is derived from the Debian source the
# machine already uses (so a local mirror keeps working), and only libraft is
# pinned to it; everything else stays on bookworm.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: must run as root (it installs Debian packages)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# Find the URI of the main Debian archive already configured on this machine.
debian_uri() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '
            /^URIs:/ { u = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") s = 1 }
            /^$/ { if (u != "" && s && !done) { print u; done = 1 } u = ""; s = 0 }
            END { if (u != "" && s && !done) print u }' "$f")
        if [ -n "$uri" ]; then echo "$uri"; return; fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [options] URI suite components: skip an optional [...] field.
        uri=$(awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                                if ($(i + 1) == "bookworm") { print $i; exit } }' "$f")
        if [ -n "$uri" ]; then echo "$uri"; return; fi
    done
}

bp_list=/etc/apt/sources.list.d/bkv-bookworm-backports.list
# An active backports source: a "deb" line or a deb822 Suites line (not a comment).
has_backports() {
    grep -rqsE '^[[:space:]]*(deb[[:space:]].*|Suites:.*[[:space:]])bookworm-backports([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/
}
if ! has_backports; then
    uri=$(debian_uri)
    if [ -z "$uri" ]; then
        echo "setup: no Debian bookworm source found in /etc/apt; cannot add backports" >&2
        exit 1
    fi
    echo "deb $uri bookworm-backports main" >"$bp_list"
fi

cat >/etc/apt/preferences.d/bkv-libraft <<'PIN'
# BKV needs libraft >= 0.22 (bookworm's 0.15 has a commit-safety bug).
Package: libraft-dev libraft0 libraft2 libraft-tools
Pin: release n=bookworm-backports
Pin-Priority: 990
PIN

packages=(
    build-essential cmake pkg-config git
    clang-14 libclang-rt-14-dev clang-format-14
    libssl-dev openssl
    libcunit1-dev
    libjansson-dev
    libargon2-dev
    libuv1-dev
    libsqlite3-dev sqlite3
    softhsm2 opensc libp11-kit-dev
    node-llhttp
    python3 curl procps
    prometheus
    libraft-dev
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
raft_ver=$(dpkg-query -W -f='${Version}' libraft-dev 2>/dev/null || true)
case "$raft_ver" in
    0.1[0-9]* | 0.[0-9].* | "") missing+=(libraft-dev) ;;
esac

if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    # The pin above takes libraft from backports; everything else comes from bookworm.
    # prometheus is installed for promtool only: its service must not start here.
    policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -z "$policy" ] || rm -f "$policy"
fi

raft_ver=$(dpkg-query -W -f='${Version}' libraft-dev)
case "$raft_ver" in
    0.2[2-9]* | 0.[3-9]* | [1-9]*) ;;
    *) echo "setup: libraft-dev $raft_ver installed, need >= 0.22 from bookworm-backports" >&2; exit 1 ;;
esac
echo "setup: dependencies ready (libraft $raft_ver)"
