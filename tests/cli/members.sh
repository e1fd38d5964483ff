#!/usr/bin/env bash
# Membership and leadership with real processes: a 3-node cluster gets a
# fourth node end to end (token, HSM enrolment, start, add as a non-voter,
# catch-up by snapshot, promotion), loses its old leader by removal, moves
# leadership by transfer, and keeps registering and recovering keys with one
# state hash on every member. Every changing operation is refused without the
# admin token, or with a wrong one, and changes nothing.
#   tests/cli/members.sh BUILD_DIR BASE_PORT
set -euo pipefail
build=$1
base=${2:-30100}
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/tests/cli/lib.sh"
work=$(mktemp -d /tmp/bkv-members-test.XXXXXX)
c=$work/c
cleanup() {
    bash "$here/scripts/cluster.sh" down --dir "$c" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

cluster() { bash "$here/scripts/cluster.sh" "$@" --dir "$c"; }
admin_addr() { echo "127.0.0.1:$((base + 200 + $1))"; }
st() { curl -fsS --max-time 3 "http://$(admin_addr "$1")/v1/status" 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)"; }
bkvadmin() { "$build/node/bkv-admin" "$@"; }

cluster up --nodes 3 --spares 2 --limit 5 --base-port "$base" --build "$build" --snapshot-threshold 16 \
    --ksf-t 1 --ksf-m-kib 1024 --ksf-p 1 --router-arg --rate=100000 --router-arg --burst=100000 \
    >"$work/up.log" 2>&1 || { cat "$work/up.log"; exit 1; }
. "$c/cluster.env"
leader=$(cluster leader)
tok=$c/secrets/admin.token

bkv=$build/client/bkv
printf 'members password\n' >"$work/pw"
printf 'wrong\n' >"$work/wpw"
cluster token --account dave >"$work/token" 2>/dev/null
chmod 600 "$work/pw" "$work/wpw" "$work/token"
conn=(--router "$BKV_ROUTER" --fingerprint "$BKV_FINGERPRINT" --account dave --token-file "$work/token")
$bkv keygen --out "$work/key" >/dev/null
$bkv register "${conn[@]}" --key-file "$work/key" --password-file "$work/pw" >/dev/null
# Enough entries that the log is compacted: a new node must catch up by snapshot.
for i in $(seq 1 12); do
    $bkv recover "${conn[@]}" --password-file "$work/pw" --out "$work/k$i" >/dev/null
done
check "recoveries work before the change" 'cmp -s "$work/key" "$work/k12"'

# Authorization: no token, a wrong token, and nothing changes.
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
check "add without a token is 401" '[ "$(code -X POST "http://$(admin_addr "$leader")/v1/members?id=4&raft=127.0.0.1:$((base + 4))")" = 401 ]'
check "transfer with a wrong token is 401" '[ "$(code -X POST -H "Authorization: Bearer nope" "http://$(admin_addr "$leader")/v1/leader/transfer")" = 401 ]'
check "remove with a wrong token is 401" '[ "$(code -X DELETE -H "Authorization: Bearer nope" "http://$(admin_addr "$leader")/v1/members/2")" = 401 ]'
check "promote without a token is 401" '[ "$(code -X POST "http://$(admin_addr "$leader")/v1/members/2/promote")" = 401 ]'
printf 'not the token\n' >"$work/bad.token"
chmod 600 "$work/bad.token"
bkvadmin members remove --admin "$(admin_addr 1)" --token-file "$work/bad.token" --id 2 >/dev/null 2>"$work/err" && rc=0 || rc=$?
check "bkv-admin with a wrong token fails with 401" '[ "$rc" = 1 ] && grep -q "HTTP 401" "$work/err"'
check "the configuration still has 3 voters, leader unchanged" '[ "$(st "$leader" "sum(m[\"role\"] == \"voter\" for m in d[\"members\"])")" = 3 ] && [ "$(cluster leader)" = "$leader" ]'

# Node 4 end to end: token, enrolment ceremony, start, add, catch up, promote.
cluster add --node 4 >"$work/add.log" 2>&1 || { cat "$work/add.log"; bad "cluster add node 4"; }
leader=$(cluster leader) # node 1 stepped out for the enrolment ceremony
bkvadmin members add --admin "$(admin_addr 1)" --token-file "$tok" --id 4 --raft "127.0.0.1:$((base + 4))" >"$work/out" 2>&1 && rc=0 || rc=$?
check "bkv-admin members add node 4 as a non-voter" '[ "$rc" = 0 ]'
check "node 4 is a standby in the leader's configuration" '[ "$(st "$leader" "[m[\"role\"] for m in d[\"members\"] if m[\"id\"] == 4][0]")" = standby ]'
caught_up() { [ "$(st 4 "d[\"applied_index\"]")" -ge "$(st "$leader" "d[\"commit_index\"]")" ]; }
if wait_until 30 caught_up; then ok "node 4 caught up"; else bad "node 4 did not catch up: $(tail -n 3 "$c/node-4/node.log")"; fi
restored=$(curl -fsS "http://$(admin_addr 4)/metrics" | awk '$1 == "bkv_raft_snapshots_restored_total" {print $2}' || true)
check "node 4 caught up by installing a snapshot image" '[ "${restored:-0}" -ge 1 ]'
bkvadmin members promote --admin "$(admin_addr 2)" --token-file "$tok" --id 4 >"$work/out" 2>&1 && rc=0 || rc=$?
check "bkv-admin members promote node 4" '[ "$rc" = 0 ]'
check "node 4 is a voter" '[ "$(st "$leader" "[m[\"role\"] for m in d[\"members\"] if m[\"id\"] == 4][0]")" = voter ]'
check "the leader reports node 4's match index" '[ "$(st "$leader" "[m.get(\"match_index\", 0) for m in d[\"members\"] if m[\"id\"] == 4][0]")" -ge 1 ]'

# Remove the old leader; a new one takes over; the old process is stopped.
leader=$(cluster leader)
bkvadmin members remove --admin "$(admin_addr 4)" --token-file "$tok" --id "$leader" >"$work/out" 2>&1 && rc=0 || rc=$?
check "bkv-admin members remove the old leader (node $leader)" '[ "$rc" = 0 ]'
cluster kill --node "$leader" --signal TERM
others=()
for i in 1 2 3 4; do [ "$i" = "$leader" ] || others+=("$i"); done
new_leader() {
    local i
    for i in "${others[@]}"; do [ "$(st "$i" "d[\"role\"]")" = leader ] && return 0; done
    return 1
}
if wait_until 30 new_leader; then ok "a new leader among the remaining members"; else bad "no new leader"; fi
gone() { [ "$(st "${others[0]}" "len([m for m in d[\"members\"] if m[\"id\"] == $leader])")" = 0 ]; }
check "the removed node is gone from the configuration" 'wait_until 10 gone'

# Register and recover keep working.
cluster token --account erin >"$work/token2" 2>/dev/null
chmod 600 "$work/token2"
conn2=(--router "$BKV_ROUTER" --fingerprint "$BKV_FINGERPRINT" --account erin --token-file "$work/token2")
$bkv keygen --out "$work/key2" >/dev/null
$bkv register "${conn2[@]}" --key-file "$work/key2" --password-file "$work/pw" >/dev/null 2>&1 && rc=0 || rc=$?
check "register works after the change" '[ "$rc" = 0 ]'
$bkv recover "${conn2[@]}" --password-file "$work/pw" --out "$work/r2" >/dev/null 2>&1 && rc=0 || rc=$?
check "recover works after the change" '[ "$rc" = 0 ] && cmp -s "$work/key2" "$work/r2"'
$bkv recover "${conn[@]}" --password-file "$work/pw" --out "$work/r1" >/dev/null 2>&1 && rc=0 || rc=$?
check "the key registered before the change is still recovered" '[ "$rc" = 0 ] && cmp -s "$work/key" "$work/r1"'

# Leadership transfer to a named member.
cur=
for i in "${others[@]}"; do [ "$(st "$i" "d[\"role\"]")" = leader ] && cur=$i; done
target=${others[0]}
[ "$target" = "$cur" ] && target=${others[1]}
bkvadmin leader transfer --admin "$(admin_addr "$target")" --token-file "$tok" --to "$target" >"$work/out" 2>&1 && rc=0 || rc=$?
check "bkv-admin leader transfer to node $target" '[ "$rc" = 0 ] || { cat "$work/out"; false; }'
is_leader() { [ "$(st "$target" "d[\"role\"]")" = leader ]; }
check "node $target leads" 'wait_until 10 is_leader'

# One state hash on every member.
converged() {
    local i h ref=
    for i in "${others[@]}"; do
        h=$(st "$i" "str(d[\"store\"][\"state_index\"]) + d[\"store\"][\"state_hash\"]") || return 1
        [ -z "$ref" ] && ref=$h
        [ "$h" = "$ref" ] || return 1
    done
}
check "every member converges to one state hash" 'wait_until 20 converged'

# Replace a failed node: kill -9 a follower, remove it, add node 5 in its place.
failed=
for i in "${others[@]}"; do [ "$i" != "$target" ] && [ -z "$failed" ] && failed=$i; done
cluster kill --node "$failed"
bkvadmin members remove --admin "$(admin_addr "$target")" --token-file "$tok" --id "$failed" >"$work/out" 2>&1 && rc=0 || rc=$?
check "bkv-admin members remove the failed node $failed" '[ "$rc" = 0 ] || { cat "$work/out"; false; }'
cluster add --node 5 >"$work/add5.log" 2>&1 || { cat "$work/add5.log"; bad "cluster add node 5"; }
bkvadmin members add --admin "$(admin_addr "$target")" --token-file "$tok" --id 5 --raft "127.0.0.1:$((base + 5))" >"$work/out" 2>&1 && rc=0 || rc=$?
check "bkv-admin members add the replacement node 5" '[ "$rc" = 0 ] || { cat "$work/out"; false; }'
leader=$(cluster leader)
if wait_until 30 bash -c "[ \$(curl -fsS http://$(admin_addr 5)/v1/status | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"applied_index\"])') -ge $(st "$leader" "d[\"commit_index\"]") ]"; then
    ok "node 5 caught up"
else
    bad "node 5 did not catch up"
fi
bkvadmin members promote --admin "$(admin_addr "$target")" --token-file "$tok" --id 5 >"$work/out" 2>&1 && rc=0 || rc=$?
check "bkv-admin members promote node 5" '[ "$rc" = 0 ] || { cat "$work/out"; false; }'
others=()
for i in 1 2 3 4 5; do [ -f "$c/node-$i/pid" ] && others+=("$i"); done
# The promote committed on the leader; node $target may be a follower by now (node 1 stepped
# out for node 5's enrolment ceremony), so wait until its configuration shows it too.
three_voters() { [ "$(st "$target" "sum(m[\"role\"] == \"voter\" for m in d[\"members\"])")" = 3 ]; }
check "three voters again" 'wait_until 10 three_voters'
$bkv recover "${conn2[@]}" --password-file "$work/pw" --out "$work/r3" >/dev/null 2>&1 && rc=0 || rc=$?
check "recover works after the replacement" '[ "$rc" = 0 ] && cmp -s "$work/key2" "$work/r3"'
check "every member converges to one state hash after the replacement" 'wait_until 20 converged'

echo "membership: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
