#!/usr/bin/env bash
# cluster/raft: three bkv-raftd processes on loopback with the real disk log.
#
#   raft_cluster.sh PATH/TO/bkv-raftd
#
# Normal path: bootstrap 3 nodes in a mktemp directory, register accounts,
# run a pipelined burst of ATTEMPTs (tests/cluster/raft_client.py) and
# kill -9 the leader in the middle of it; the client follows the new leader
# and retries with the same request ids. Then restart the killed node, wait
# until all three applied the same index (with --snapshot-threshold 64 it
# catches up by InstallSnapshot), and check that no acknowledged
# ATTEMPT was lost and that every node holds the same counters and state
# hash. Then kill -9 a follower, register records worth more than 1 MiB of
# image while it is down, restart it: it catches up by InstallSnapshot, whose
# payload is a 64-byte descriptor, fetching the image out of band from the
# leader's snapshot server (--snapshot), and every node ends with the same
# hash. Then restart that follower with the slow-snapshot failpoint and run a
# burst: an InstallSnapshot reaches it while it takes its own snapshot (the
# libraft 0.22.1 crash), is held back, and it converges without dying. Stop
# and start all nodes and check that nothing changed (no double apply on
# replay).
# Failure modes checked: a data directory on a read-only tmpfs (the node exits
# non-zero and names the directory); a 1 MiB tmpfs (proposals fail with
# nospace); a tmpfs that fills up during a burst (proposals fail with nospace,
# or the node exits non-zero when the store fills first), then remounted
# bigger; a tmpfs filled behind the node's back (the store's write fails in
# apply: the node exits 3), copied to a big disk: both open intact with every
# acknowledged registration. The mount cases need root and are skipped without it.
# Every wait polls with a deadline; processes are stopped by PID only.
set -u

RAFTD=${1:?usage: raft_cluster.sh PATH/TO/bkv-raftd}
HERE=$(cd "$(dirname "$0")" && pwd)
CLIENT=(python3 "$HERE/raft_client.py")
# In the sanitizer build: fail on our leaks, not on libraft's own (lsan.supp).
export LSAN_OPTIONS="suppressions=$HERE/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
T=$(mktemp -d "${TMPDIR:-/tmp}/bkv-raft-cluster.XXXXXX")
PASS=0
FAIL=0
SKIP=0
declare -A PID=()
MOUNTS=()

cleanup() {
    for id in "${!PID[@]}"; do
        kill -9 "${PID[$id]}" 2>/dev/null
        wait "${PID[$id]}" 2>/dev/null
    done
    for m in "${MOUNTS[@]}"; do
        umount "$m" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT

ok() {
    PASS=$((PASS + 1))
    echo "ok - $*"
}
bad() {
    FAIL=$((FAIL + 1))
    echo "FAIL - $*"
}
skip() {
    SKIP=$((SKIP + 1))
    echo "skip - $*"
}
# check DESCRIPTION COMMAND...: ok if the command succeeds.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
now_ms() { date +%s%3N; }

# Free loopback ports, one per line.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
EOF
}
mapfile -t PORTS < <(free_ports 11)
RP=([1]=${PORTS[0]} [2]=${PORTS[1]} [3]=${PORTS[2]})
CP=([1]=${PORTS[3]} [2]=${PORTS[4]} [3]=${PORTS[5]})
SP=([1]=${PORTS[8]} [2]=${PORTS[9]} [3]=${PORTS[10]}) # snapshot image servers
SOLO_RAFT=${PORTS[6]}
SOLO_CTL=${PORTS[7]}
MEMBERS=()
for i in 1 2 3; do MEMBERS+=(--member "$i@dc$i@127.0.0.1:${RP[$i]}@127.0.0.1:${SP[$i]}"); done
nodes_except() { # the control addresses of every node but $1
    local out="" i
    for i in 1 2 3; do
        [ "$i" = "${1:-0}" ] && continue
        out+="${out:+,}$i=127.0.0.1:${CP[$i]}"
    done
    echo "$out"
}
ALL=$(nodes_except 0)

start_node() { # start_node ID [extra bkv-raftd options]
    "$RAFTD" --id "$1" --dc "dc$1" --raft "127.0.0.1:${RP[$1]}" --data "$T/n$1" \
        --control "127.0.0.1:${CP[$1]}" --snapshot "127.0.0.1:${SP[$1]}" "${MEMBERS[@]}" \
        --bootstrap --max-attempts 1000000 \
        --snapshot-threshold 64 --snapshot-trailing 16 "${@:2}" \
        >>"$T/n$1.log" 2>&1 &
    PID[$1]=$!
}
# stop_node ID: SIGTERM, wait; true if it exited 0.
stop_node() {
    local pid=${PID[$1]} rc
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    unset "PID[$1]"
    [ "$rc" -eq 0 ] || echo "   node $1 exited with $rc" >&2
    [ "$rc" -eq 0 ]
}
# converge TIMEOUT: wait for every node to converge; a node that died (the
# libraft 0.22.1 SIGSEGV included, now held off by consensus/iotap.c) fails it.
converge() {
    local end=$((SECONDS + $1)) i rc
    while [ "$SECONDS" -lt "$end" ]; do
        "${CLIENT[@]}" wait-converged "$ALL" --timeout 5 >/dev/null 2>&1 && return 0
        for i in 1 2 3; do
            [ -n "${PID[$i]:-}" ] || continue
            kill -0 "${PID[$i]}" 2>/dev/null && continue
            rc=0
            wait "${PID[$i]}" || rc=$?
            unset "PID[$i]"
            echo "   node $i died (status $rc$([ "$rc" -eq 139 ] && echo ", SIGSEGV"))"
            return 1
        done
    done
    "${CLIENT[@]}" wait-converged "$ALL" --timeout 1
}
kill9_node() {
    kill -9 "${PID[$1]}"
    wait "${PID[$1]}" 2>/dev/null
    unset "PID[$1]"
}
leader_of() { "${CLIENT[@]}" wait-leader "$1" --timeout "${2:-20}" 2>&1; }
# status_of ID FIELD: one field of node ID's STATUS line.
status_of() {
    "${CLIENT[@]}" ctl "127.0.0.1:${CP[$1]}" STATUS 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"
}
# wait_lines FILE N SECONDS: until FILE has at least N lines.
wait_lines() {
    local deadline=$(($(now_ms) + $3 * 1000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
        sleep 0.02
    done
    return 1
}
# wait_exit PID SECONDS: until the process has exited; its status in $EXIT_RC.
wait_exit() {
    local deadline=$(($(now_ms) + $2 * 1000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        if ! kill -0 "$1" 2>/dev/null; then
            wait "$1"
            EXIT_RC=$?
            return 0
        fi
        sleep 0.05
    done
    return 1
}

echo "raft_cluster: bkv-raftd $RAFTD, data under $T"
ACCOUNTS=16
BURST=6000

# ---- 1. a cluster, a leader, registered accounts ----
for i in 1 2 3; do start_node "$i"; done
check "a leader is elected" leader_of "$ALL" >/dev/null
check "register $ACCOUNTS accounts" "${CLIENT[@]}" burst "$ALL" --type REGISTER \
    --count "$ACCOUNTS" --accounts "$ACCOUNTS" --timeout 20

# ---- 2. kill -9 the leader in the middle of a burst of ATTEMPTs ----
"${CLIENT[@]}" burst "$ALL" --count "$BURST" --accounts "$ACCOUNTS" --window 32 \
    --acks "$T/acks" --timeout 60 >"$T/burst.out" 2>&1 &
BURST_PID=$!
if wait_lines "$T/acks" $((BURST / 4)) 30; then
    old=$(leader_of "$ALL" 5)
    acked_before=$(wc -l <"$T/acks")
    t0=$(now_ms)
    kill9_node "$old"
    ok "kill -9 leader (node $old) after $acked_before of $BURST acknowledged"
    if new=$(leader_of "$(nodes_except "$old")" 20); then
        ok "node $new leads after $(($(now_ms) - t0)) ms"
    else
        bad "no new leader after killing node $old"
    fi
else
    bad "burst did not get going"
    old=1
fi
wait "$BURST_PID"
BURST_RC=$?
sed 's/^/   /' "$T/burst.out"
check "burst: every ATTEMPT acknowledged despite the leader's death" [ "$BURST_RC" -eq 0 ]
acked=$(wc -l <"$T/acks")
replayed=$(grep -c ' replayed=1' "$T/acks")
echo "   $acked acknowledged, $replayed of them answered as replays of a retried request id"

# ---- 3. restart the killed node; all converge to the same state ----
[ -n "${PID[$old]:-}" ] || start_node "$old"
check "restarted node $old catches up: same applied index and hash on all 3" converge 30
check "no acknowledged ATTEMPT lost; counters and hash equal on every node" \
    "${CLIENT[@]}" verify "$ALL" --acks "$T/acks" --count "$BURST" --accounts "$ACCOUNTS"

# ---- 3b. a lagging node catches up by snapshot; the image moves out of band ----
# Threshold 64, trailing 16: after 400 entries the others' logs start well
# past the stopped node's, so the leader sends it an InstallSnapshot. Its
# payload is the 64-byte descriptor; the restarted node fetches the image
# (400 records of 2 x 2000 bytes: more than 1 MiB) from the leader's
# snapshot server, checks size and SHA-256, and installs it.
# (a node lost to an earlier failure is started again, so that one failure
# does not hide what this part checks)
for i in 1 2 3; do
    if [ -z "$(status_of "$i" role)" ]; then
        if [ -n "${PID[$i]:-}" ]; then
            kill -9 "${PID[$i]}" 2>/dev/null
            wait "${PID[$i]}" 2>/dev/null
        fi
        unset "PID[$i]"
        start_node "$i"
    fi
done
"${CLIENT[@]}" wait-converged "$ALL" --timeout 30 >/dev/null
number_or() { case $1 in '' | *[!0-9]*) echo "$2" ;; *) echo "$1" ;; esac; }
lead=$(number_or "$(leader_of "$ALL" 10)" 1)
lag=$((lead % 3 + 1))
kill9_node "$lag"
BIG=400
check "register $BIG records of 2 x 2000 bytes, one entry each, while node $lag is down" \
    "${CLIENT[@]}" burst "$(nodes_except "$lag")" --type REGISTER --count "$BIG" \
    --accounts "$BIG" --blob 2000 --seed big --window 1 --timeout 120
lead=$(number_or "$(leader_of "$(nodes_except "$lag")" 10)" 1)
echo "   leader $lead: $("${CLIENT[@]}" ctl "127.0.0.1:${CP[$lead]}" STATUS | cut -c1-400)"
start_node "$lag"
check "node $lag catches up by snapshot: same applied index and hash on all 3" \
    "${CLIENT[@]}" wait-converged "$ALL" --timeout 60
fetched=$(status_of "$lag" fetched)
restored=$(status_of "$lag" restored)
size=$(status_of "$lag" image_size)
served=$(status_of "$lead" served)
echo "   node $lag: fetched=$fetched restored=$restored image_size=$size; leader $lead served=$served"
check "node $lag fetched the image out of band and installed it" \
    [ "${fetched:-0}" -ge 1 -a "${restored:-0}" -ge 1 ]
check "the image is bigger than 1 MiB ($size bytes)" [ "${size:-0}" -gt 1048576 ]
check "the leader's snapshot server sent it (served=$served)" [ "${served:-0}" -ge 1 ]
check "node $lag keeps an image named by its SHA-256, of more than 1 MiB" python3 -c '
import hashlib, os, sys
d = sys.argv[1]
ok = False
for n in os.listdir(d):
    if len(n) == 67 and n.endswith(".db"):
        with open(os.path.join(d, n), "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != n[:64]:
            sys.exit("%s: content does not hash to its name" % n)
        ok = ok or len(data) > 1048576
sys.exit(0 if ok else "no image of more than 1 MiB")' "$T/n$lag/images"
grep -h "fetch\|restore" "$T/n$lag.log" | tail -3 | sed 's/^/   /'

# ---- 3c. an InstallSnapshot that arrives while the node takes its own snapshot ----
# libraft 0.22.1 dereferences NULL when it accepts one then (docs/architecture.md);
# consensus/iotap.c holds it back until the snapshot ends. The failpoint makes
# every snapshot node $lag takes end 3 s late and drops the entries sent to it
# meanwhile (a stalled disk), so under a burst the leader compacts past it and
# sends an InstallSnapshot inside that window, every time.
stop_node "$lag" >/dev/null 2>&1
start_node "$lag" --test-slow-snapshot 3000
slow_pid=${PID[$lag]}
"${CLIENT[@]}" wait-converged "$ALL" --timeout 30 >/dev/null
check "a burst of 3000 ATTEMPTs while node $lag's snapshots stall" \
    "${CLIENT[@]}" burst "$(nodes_except "$lag")" --count 3000 --accounts "$ACCOUNTS" --window 16 \
    --seed stall --timeout 120
check "node $lag (stalled snapshots) converges with the others" converge 60
held=$(status_of "$lag" held)
check "node $lag held back an InstallSnapshot during its own snapshot (held=${held:-?})" \
    [ "${held:-0}" -ge 1 ]
same_process() { [ "${PID[$1]:-0}" = "$2" ] && kill -0 "$2"; }
check "node $lag is still the process that was started (no crash, no restart)" \
    same_process "$lag" "$slow_pid"
grep -h "hold\|held" "$T/n$lag.log" | tail -2 | sed 's/^/   /'
stop_node "$lag" >/dev/null 2>&1
start_node "$lag"
"${CLIENT[@]}" wait-converged "$ALL" --timeout 30 >/dev/null

# ---- 4. stop and start all nodes: replay changes nothing ----
"${CLIENT[@]}" state "$ALL" --accounts "$ACCOUNTS" >"$T/state.before"
stopped=0
for i in 1 2 3; do stop_node "$i" && stopped=$((stopped + 1)); done
check "clean stop of all 3 nodes (exit 0)" [ "$stopped" -eq 3 ]
for i in 1 2 3; do start_node "$i"; done
check "after restart: same applied index and hash on all 3" converge 30
"${CLIENT[@]}" state "$ALL" --accounts "$ACCOUNTS" >"$T/state.after"
check "after restart: hash and counters unchanged (no double apply)" \
    cmp -s "$T/state.before" "$T/state.after"
for i in 1 2 3; do stop_node "$i"; done

# ---- 5. unusable data directories ----
solo() { # solo DATA_DIR [args]: one single-node cluster, in the background
    local dir=$1
    shift
    "$RAFTD" --id 1 --raft "127.0.0.1:$SOLO_RAFT" --control "127.0.0.1:$SOLO_CTL" \
        --member "1@dc1@127.0.0.1:$SOLO_RAFT" --bootstrap --data "$dir" "$@" \
        >>"$dir.log" 2>&1 &
    PID[solo]=$!
}
SOLO_NODE="1=127.0.0.1:$SOLO_CTL"
if [ "$(id -u)" -ne 0 ] || ! mkdir -p "$T/ro" || ! mount -t tmpfs -o size=4m tmpfs "$T/ro"; then
    skip "read-only and full-disk cases need root and tmpfs mounts"
else
    MOUNTS+=("$T/ro")
    # A node that ran once (a bootstrapped directory) and a fresh directory.
    mkdir "$T/ro/fresh"
    solo "$T/ro/used"
    leader_of "$SOLO_NODE" 10 >/dev/null
    stop_node solo
    cp "$T/ro/used.log" "$T/used.log" && rm -f "$T/ro/"*.log
    mount -o remount,ro "$T/ro"
    for d in fresh used; do
        "$RAFTD" --id 1 --raft "127.0.0.1:$SOLO_RAFT" --control "127.0.0.1:$SOLO_CTL" \
            --member "1@dc1@127.0.0.1:$SOLO_RAFT" --data "$T/ro/$d" 2>"$T/ro-$d.err" &
        pid=$!
        if wait_exit "$pid" 10 && [ "$EXIT_RC" -ne 0 ] && grep -q "$T/ro/$d" "$T/ro-$d.err"; then
            ok "read-only $d data dir: exit $EXIT_RC, $(head -c 160 "$T/ro-$d.err")"
        else
            kill -9 "$pid" 2>/dev/null
            bad "read-only $d data dir: $(cat "$T/ro-$d.err")"
        fi
    done

    # A 1 MiB tmpfs: libraft's capacity check refuses every entry.
    mkdir -p "$T/tiny" && mount -t tmpfs -o size=1m tmpfs "$T/tiny" && MOUNTS+=("$T/tiny")
    solo "$T/tiny/d"
    reply=""
    deadline=$(($(now_ms) + 10000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        reply=$("${CLIENT[@]}" ctl "127.0.0.1:$SOLO_CTL" \
            "REGISTER $(printf 'ab%.0s' {1..32}) $(printf '01%.0s' {1..16}) aa bb" 2>/dev/null)
        case "$reply" in "ERR nospace"* | OK*) break ;; esac
        sleep 0.05
    done
    check "1 MiB data dir: proposals fail: ${reply:0:110}" [ "${reply#ERR nospace}" != "$reply" ]
    stop_node solo

    # A 16 MiB tmpfs that fills up during a burst of 4 KiB registrations:
    # libraft's capacity check refuses new entries before the disk is full.
    mkdir -p "$T/full" && mount -t tmpfs -o size=16m tmpfs "$T/full" && MOUNTS+=("$T/full")
    solo "$T/full/d"
    leader_of "$SOLO_NODE" 10 >/dev/null
    "${CLIENT[@]}" burst "$SOLO_NODE" --type REGISTER --count 5000 --accounts 5000 --blob 4000 \
        --window 16 --acks "$T/full.acks" --stop-on-err --timeout 30 >"$T/full.out" 2>&1
    sed 's/^/   /' "$T/full.out"
    # Whichever fills first decides the error: libraft's log (proposals fail
    # with nospace) or the store (the node exits non-zero, saying why).
    if grep -q "stopped on: ERR nospace" "$T/full.out"; then
        ok "filling disk: proposals fail with nospace"
        stop_node solo
    elif wait_exit "${PID[solo]}" 10; then
        unset "PID[solo]"
        msg=$(grep 'unavailable, exiting' "$T/full/d.log" | head -c 300)
        if [ "$EXIT_RC" -ne 0 ] && [ -n "$msg" ]; then
            ok "filling disk: node exits $EXIT_RC: ${msg#*exiting: }"
        else
            bad "filling disk: node exited $EXIT_RC without a reason"
        fi
    else
        bad "filling disk: neither a nospace error nor an exit"
        stop_node solo
    fi
    mount -o remount,size=64m "$T/full"
    solo "$T/full/d"
    if leader_of "$SOLO_NODE" 15 >/dev/null; then
        check "filled disk remounted bigger: all $(wc -l <"$T/full.acks") acknowledged registrations live" \
            "${CLIENT[@]}" verify "$SOLO_NODE" --type REGISTER --acks "$T/full.acks" \
            --count 5000 --accounts 5000
    else
        bad "filled disk remounted bigger: the node does not start: $(tail -3 "$T/full/d.log")"
    fi
    stop_node solo

    # Registrations, then a filler takes the last bytes: libraft still accepts
    # entries (its capacity is measured per segment), the store's write fails
    # inside apply, and the node must exit rather than stall.
    mkdir -p "$T/fill" && mount -t tmpfs -o size=16m tmpfs "$T/fill" && MOUNTS+=("$T/fill")
    solo "$T/fill/d"
    leader_of "$SOLO_NODE" 10 >/dev/null
    "${CLIENT[@]}" burst "$SOLO_NODE" --type REGISTER --count 100 --accounts 100 --blob 4000 \
        --window 16 --acks "$T/fill.acks" --timeout 20 >/dev/null 2>&1
    dd if=/dev/zero of="$T/fill/filler" bs=64k 2>/dev/null
    "${CLIENT[@]}" burst "$SOLO_NODE" --type REGISTER --count 50 --accounts 50 --blob 4000 \
        --seed more --timeout 10 >/dev/null 2>&1
    if wait_exit "${PID[solo]}" 10; then
        unset "PID[solo]"
        msg=$(grep 'unavailable, exiting' "$T/fill/d.log" | head -c 300)
        check "full disk: node exits $EXIT_RC: ${msg#*exiting: }" [ "$EXIT_RC" -ne 0 ]
    else
        bad "full disk: node still running"
        stop_node solo
    fi
    cp -a "$T/fill/d" "$T/big" && umount "$T/fill"
    check "full disk: the copied store passes SQLite's integrity check" python3 -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
sys.exit(0 if c.execute("PRAGMA integrity_check").fetchone()[0] == "ok" else 1)' "$T/big/state.db"
    solo "$T/big"
    if leader_of "$SOLO_NODE" 15 >/dev/null; then
        n=$(wc -l <"$T/fill.acks")
        check "full disk: copied to a big disk, all $n acknowledged registrations live" \
            "${CLIENT[@]}" verify "$SOLO_NODE" --type REGISTER --acks "$T/fill.acks" \
            --count 100 --accounts 100
        check "full disk: the reopened node accepts new proposals" "${CLIENT[@]}" burst \
            "$SOLO_NODE" --type REGISTER --count 10 --accounts 10 --seed after --timeout 10
        "${CLIENT[@]}" ctl "127.0.0.1:$SOLO_CTL" STATUS | sed 's/^/   /'
    else
        bad "full disk: the copied directory does not start: $(tail -3 "$T/big.log")"
    fi
    stop_node solo
fi

# ---- 6. a store ahead of its log: a wiped raft/ next to a kept state.db ----
# Bootstrapping a fresh log under a store that already holds entries would
# make later commands land on indexes the store skips: the node must refuse.
solo "$T/ahead"
leader_of "$SOLO_NODE" 10 >/dev/null
"${CLIENT[@]}" burst "$SOLO_NODE" --type REGISTER --count 5 --accounts 5 --timeout 10 >/dev/null 2>&1
stop_node solo
rm -rf "$T/ahead/raft"
echo leftover >"$T/ahead/snapshots/snapshot-99.db" # a crash's leftover image
"$RAFTD" --id 1 --raft "127.0.0.1:$SOLO_RAFT" --control "127.0.0.1:$SOLO_CTL" \
    --member "1@dc1@127.0.0.1:$SOLO_RAFT" --bootstrap --data "$T/ahead" 2>"$T/ahead.err" &
pid=$!
if wait_exit "$pid" 10 && [ "$EXIT_RC" -ne 0 ] && grep -q "refusing to bootstrap" "$T/ahead.err"; then
    ok "store ahead of a wiped log: bootstrap refused: $(head -c 160 "$T/ahead.err")"
else
    kill -9 "$pid" 2>/dev/null
    bad "store ahead of a wiped log: $(head -c 300 "$T/ahead.err")"
fi
check "leftover snapshot images are removed at start" [ ! -e "$T/ahead/snapshots/snapshot-99.db" ]

if [ "$SKIP" -gt 0 ]; then echo "raft_cluster: $PASS passed, $FAIL failed, $SKIP skipped"; else echo "raft_cluster: $PASS passed, $FAIL failed"; fi
[ "$FAIL" -eq 0 ]
