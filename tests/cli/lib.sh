# shellcheck shell=bash
# Shared helpers of the tests/cli cluster scripts (sourced): pass/fail
# counting, checks written as shell conditions, polling with a deadline (never
# a fixed sleep), and LeakSanitizer's suppressions for libraft in the
# sanitizer build.
CLI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export LSAN_OPTIONS="suppressions=$CLI_ROOT/tests/cluster/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
# check DESCRIPTION CONDITION: ok if the shell condition (a string, eval'd) holds.
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
# wait_until SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds or time is up.
wait_until() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.1
    done
}
