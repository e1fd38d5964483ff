#!/usr/bin/env bash
# e2e/failover: issue 5's test 4 on a real 5-node cluster (3 simulated data
# centers, 2+2+1) and router on loopback, limit 10:
#   a. kill -9 of the leader between LOGIN_INIT and LOGIN_FINISH: the
#      LOGIN_FINISH reaches the new leader, which has no such session
#      (SESSION_UNKNOWN) and releases nothing, and the attempt stays counted;
#      once a new leader is known, a recovery through the router succeeds
#      without any retry by the client;
#      the killed node restarts and all nodes converge to one state hash;
#   b. kill -9 of the leader during a burst of wrong guesses from 4 probe
#      processes on one account, and of the next leader too while the first
#      is still down (if the burst is still going): counted at the clients,
#      the KE2s issued never exceed the limit, and fall short of it only by
#      answers lost in a crash (at most one per client per kill); no two of
#      them carry the same attempts_left; the account ends destroyed on
#      every node; the right password gets DESTROYED; the killed nodes
#      restart and every node converges to one state hash; the router
#      follows the current leader (a fresh register + recover works at once).
#
#   failover.sh BUILD_DIR
set -u

BUILD=${1:?usage: failover.sh BUILD_DIR}
BASE=${E2E_BASE_PORT:-22000}
T=$(mktemp -d "${TMPDIR:-/tmp}/bkv-e2e-failover.XXXXXX")
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

LIMIT=10
CLIENTS=4
cluster_up --nodes 5 --limit "$LIMIT" --snapshot-threshold 32

for a in eve frank gina; do token "$a" >"$T/$a.token" && chmod 600 "$T/$a.token"; done
PW=Pw-$(head -c 12 /dev/urandom | base64 | tr '+/' '._')
WRONG=Wrong-$PW

# wait_for SECONDS COMMAND...: poll until the command succeeds.
wait_for() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.1
    done
}
alive() { kill -0 "$1" 2>/dev/null; }
# new_leader OLD: wait for a ready leader other than OLD; prints its id.
new_leader() { "${HELPER[@]}" leader --base "$BKV_BASE" --nodes "$BKV_NODES" --not "$1"; }
kill_node() {
    "$CLUSTER" kill --dir "$T/c" --node "$1" >/dev/null && ok "kill -9 node-$1 (the leader)" ||
        bad "kill -9 node-$1"
}
start_node() {
    "$CLUSTER" start --dir "$T/c" --node "$1" && ok "restarted node-$1" || bad "restart node-$1"
}

# --- a. the leader dies between LOGIN_INIT and LOGIN_FINISH -------------------------

L=$(probe register --account eve --token-file "$T/eve.token" --password "$PW")
K_E=$(kv "$L" k)
expect_eq "a: eve registered" ok "$(kv "$L" result)"
mkfifo "$T/go"
exec 7<>"$T/go"
"$PROBE" login --pause --retry-s 30 --account eve --token-file "$T/eve.token" --password "$PW" \
    <&7 >"$T/pause.out" 2>>"$T/probe.err" &
PAUSED=$!
E2E_PIDS+=("$PAUSED")
if wait_for 30 grep -q 'stage=ke2' "$T/pause.out"; then
    ok "a: the login got its KE2 and waits before LOGIN_FINISH"
else
    bad "a: no KE2 for the paused login: $(cat "$T/pause.out")"
fi
L1=$("${HELPER[@]}" leader --base "$BKV_BASE" --nodes "$BKV_NODES")
kill_node "$L1"
echo go >&7
if wait_for 60 bash -c "! kill -0 $PAUSED 2>/dev/null"; then
    wait "$PAUSED"
    L=$(tail -n 1 "$T/pause.out")
    echo "# $L"
    expect_eq "a: the new leader does not know the session" SESSION_UNKNOWN "$(kv "$L" finish_status)"
    check "a: nothing was released" test -z "$(kv "$L" k)"
else
    bad "a: the paused login did not finish"
fi
exec 7>&-
L2=$(new_leader "$L1") && ok "a: node-$L2 leads now" || bad "a: no new leader"
L=$(probe recover --account eve --token-file "$T/eve.token" --password "$PW" --expect-key "$K_E")
expect_eq "a: the router follows the new leader: recover works at once" "ok 1" \
    "$(kv "$L" result) $(kv "$L" match)"
[ "$(kv "$L" result)" = ok ] || echo "# $L"
expect_eq "a: the interrupted login still counted as an attempt" $((LIMIT - 2)) "$(kv "$L" init_left)"
start_node "$L1"
converged "a: all $BKV_NODES nodes converged"

# --- b. the leader dies during a burst of wrong guesses -----------------------------

L=$(probe register --account frank --token-file "$T/frank.token" --password "$PW")
expect_eq "b: frank registered" ok "$(kv "$L" result)"
converged "b: converged before the burst"
C0=$(kv "$CONV" commit)
T0=$(kv "$CONV" tombstones)
GP=()
for i in $(seq 1 "$CLIENTS"); do
    "$PROBE" guess --account frank --token-file "$T/frank.token" --password "$WRONG" \
        --count $((3 * LIMIT)) --pace-ms 1000 --deadline-s 150 >"$T/guess-$i.out" 2>>"$T/probe.err" &
    GP+=($!)
    E2E_PIDS+=($!)
done
running() {
    local p
    for p in "${GP[@]}"; do alive "$p" && return 0; done
    return 1
}
KILLS=0
if W=$("${HELPER[@]}" wait-commit --base "$BKV_BASE" --nodes "$BKV_NODES" --above $((C0 + 2))); then
    read -r CK K1 <<<"$W"
    kill_node "$K1"
    KILLS=$((KILLS + 1))
    K2=$(new_leader "$K1") && ok "b: node-$K2 leads now" || bad "b: no new leader"
    # The next leader too, three ATTEMPTs later, while node-$K1 is still down.
    if [ -n "$K2" ] && running &&
        W=$("${HELPER[@]}" wait-commit --base "$BKV_BASE" --nodes "$BKV_NODES" --above $((CK + 3)) \
            --timeout 20 2>/dev/null) && running; then
        read -r _ K2 <<<"$W"
        kill_node "$K2"
        KILLS=$((KILLS + 1))
        K3=$(new_leader "$K2") && ok "b: node-$K3 leads now, with two nodes down" ||
            bad "b: no third leader"
        start_node "$K2"
    else
        echo "# the burst ended before a second leader could be killed"
    fi
    start_node "$K1"
else
    bad "b: the burst did not commit"
fi
for p in "${GP[@]}"; do wait "$p"; done
SUM=0
LEFTS=()
DESTROYED=0
for i in $(seq 1 "$CLIENTS"); do
    L=$(cat "$T/guess-$i.out")
    echo "# client $i: $L"
    n=$(kv "$L" ke2)
    SUM=$((SUM + ${n:-0}))
    [ "$(kv "$L" lefts)" != - ] && IFS=, read -r -a x <<<"$(kv "$L" lefts)" && LEFTS+=("${x[@]}")
    [ "$(kv "$L" destroyed)" = 1 ] && DESTROYED=$((DESTROYED + 1))
    expect_eq "b: client $i saw no KE2 it could open and no bad point" "0 0" \
        "$(kv "$L" unexpected_ok) $(kv "$L" bad_points)"
done
echo "# $KILLS leader kill(s) during the burst; KE2s counted at the clients: $SUM; lefts: ${LEFTS[*]}"
check "b: the clients got at most $LIMIT KE2s ($SUM)" test "$SUM" -le "$LIMIT"
check "b: and at least $LIMIT minus one lost answer per client per kill ($SUM)" \
    test "$SUM" -ge $((LIMIT - CLIENTS * KILLS))
check "b: no two KE2s carry the same attempts_left" \
    test -z "$(printf '%s\n' "${LEFTS[@]}" | sort -n | uniq -d)"
check "b: every attempts_left is in 0..$((LIMIT - 1))" \
    test -z "$(printf '%s\n' "${LEFTS[@]}" | awk -v m=$((LIMIT - 1)) '$1 < 0 || $1 > m')"
check "b: the guessers were told the key is destroyed" test "$DESTROYED" -ge 1
L=$(probe recover --account frank --token-file "$T/frank.token" --password "$PW" --retry-s 20)
expect_eq "b: the right password gets DESTROYED" "DESTROYED 0" "$(kv "$L" init_status) $(kv "$L" ke2)"
converged "b: all $BKV_NODES nodes converged after the restarts"
expect_eq "b: frank's record is a tombstone on every node" $((T0 + 1)) "$(kv "$CONV" tombstones)"
for i in $(seq 1 "$BKV_NODES"); do
    expect_eq "b: node-$i counts it" $((T0 + 1)) \
        "$("${HELPER[@]}" field --base "$BKV_BASE" --node "$i" store.tombstones)"
done
L=$(probe register --account gina --token-file "$T/gina.token" --password "$PW")
K_G=$(kv "$L" k)
expect_eq "b: the router follows the current leader: register" ok "$(kv "$L" result)"
L=$(probe recover --account gina --token-file "$T/gina.token" --password "$PW" --expect-key "$K_G")
expect_eq "b: and recover" "ok 1" "$(kv "$L" result) $(kv "$L" match)"
converged "b: converged at the end"

"$CLUSTER" down --dir "$T/c" >/dev/null 2>&1
check_sanitizer_logs
e2e_finish
