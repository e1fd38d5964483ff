# shellcheck shell=bash
# Shared helpers of the e2e tests (sourced, not run). The caller sets BUILD
# (the build directory), BASE (its own --base-port) and T (its temporary
# directory) before calling e2e_init.
#
# Every wait polls with a deadline; every process is stopped by its PID
# (scripts/cluster.sh down, or the PIDs in E2E_PIDS); the EXIT trap cleans up.

E2E_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_ROOT=$(cd "$E2E_HERE/../.." && pwd)
CLUSTER="$E2E_ROOT/scripts/cluster.sh"
HELPER=(python3 "$E2E_HERE/e2e.py")
PASS=0
FAIL=0
E2E_PIDS=()
# In the sanitizer build: fail on our leaks, not on libraft's own.
export LSAN_OPTIONS="suppressions=$E2E_ROOT/tests/cluster/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

ok() {
    PASS=$((PASS + 1))
    echo "ok - $*"
}
bad() {
    FAIL=$((FAIL + 1))
    echo "FAIL - $*"
}
# check DESCRIPTION COMMAND...: ok if the command succeeds.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
# expect_eq DESCRIPTION WANT GOT
expect_eq() {
    if [ "$2" = "$3" ]; then ok "$1 ($3)"; else bad "$1: want '$2', got '$3'"; fi
}
# expect_in DESCRIPTION GOT ALLOWED...
expect_in() {
    local what=$1 got=$2 w
    shift 2
    for w in "$@"; do
        if [ "$got" = "$w" ]; then
            ok "$what ($got)"
            return
        fi
    done
    bad "$what: got '$got', want one of: $*"
}

# kv LINE KEY: the value of KEY in a probe line ("" if absent); a quoted
# value (key="a b") comes without its quotes.
kv() {
    local q=" $2=\"([^\"]*)\"" re=" $2=([^ ]*)"
    if [[ " $1" =~ $q ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    elif [[ " $1" =~ $re ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    fi
}

e2e_cleanup() {
    local p
    for p in "${E2E_PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ -e "$T/c/cluster.env" ]; then
        "$CLUSTER" down --dir "$T/c" >/dev/null 2>&1
    fi
    if [ "$FAIL" -gt 0 ] || [ -n "${E2E_KEEP:-}" ]; then
        echo "# kept $T for inspection"
    else
        rm -rf "$T"
    fi
}

e2e_init() {
    PROBE="$BUILD/tests/bkv-probe"
    BKV="$BUILD/client/bkv"
    for b in "$PROBE" "$BKV" "$BUILD/node/bkv-node" "$BUILD/node/bkv-router" "$BUILD/node/bkv-admin"; do
        if [ ! -x "$b" ]; then
            echo "Bail out! $b is missing; build first"
            exit 1
        fi
    done
    trap e2e_cleanup EXIT
}

# cluster_up ARGS...: start the cluster in $T/c and load its cluster.env.
cluster_up() {
    if ! "$CLUSTER" up --dir "$T/c" --build "$BUILD" --base-port "$BASE" \
        --ksf-m-kib 1024 --ksf-t 1 --ksf-p 1 --router-arg --rate=1000000 \
        --router-arg --burst=1000000 "$@" >"$T/cluster-up.log" 2>&1; then
        cat "$T/cluster-up.log"
        echo "Bail out! the cluster did not come up"
        exit 1
    fi
    # shellcheck disable=SC1091
    . "$T/c/cluster.env"
    export BKV_ROUTER BKV_KEYCONFIG
    ok "cluster up: $BKV_NODES nodes, limit $BKV_LIMIT, router $BKV_ROUTER"
}

token() { "$CLUSTER" token --dir "$T/c" --account "$1" "${@:2}"; }

# probe COMMAND ARGS...: one bkv-probe line (stderr goes to $T/probe.err).
probe() { "$PROBE" "$@" 2>>"$T/probe.err"; }

# converge: wait until every node applied the leader's commit with one
# state hash; sets CONV (the helper's line) and HASH ("" when it failed).
# shellcheck disable=SC2034 # HASH is for the callers
converge() {
    CONV=$("${HELPER[@]}" converge --base "$BKV_BASE" --nodes "$BKV_NODES" --timeout 30 2>"$T/converge.err")
    local rc=$?
    HASH=$(kv "$CONV" hash)
    if [ $rc -ne 0 ]; then
        cat "$T/converge.err"
        HASH=''
    fi
    return $rc
}
# converged DESCRIPTION: converge, as a check.
converged() {
    if converge; then ok "$1: $CONV"; else bad "$1: the nodes did not converge"; fi
}


# Every live node's log is free of sanitizer reports.
check_sanitizer_logs() {
    if grep -l -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
        "$T"/c/node-*/node.log "$T"/c/router/router.log >/dev/null 2>&1; then
        grep -E -A5 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
            "$T"/c/node-*/node.log "$T"/c/router/router.log | head -40
        bad "sanitizer reports in the logs"
    else
        ok "no sanitizer report in any node's or the router's log"
    fi
}

e2e_finish() {
    echo "# $PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}
