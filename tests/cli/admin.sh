#!/usr/bin/env bash
# The admin endpoint on a live 3-node cluster (real processes, real SoftHSM2
# tokens): /livez, /readyz, /v1/status field by field, /metrics moving with
# requests and passing `promtool check metrics`, and refusals.
#   tests/cli/admin.sh BUILD_DIR BASE_PORT
set -euo pipefail
build=$1
base=${2:-25100}
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/tests/cli/lib.sh"
work=$(mktemp -d /tmp/bkv-admin-test.XXXXXX)
cleanup() {
    bash "$here/scripts/cluster.sh" down --dir "$work/c" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

admin() { curl -sS --max-time 5 -o "$work/body" -w '%{http_code}' "http://127.0.0.1:$((base + 200 + $1))$2"; }
field() { python3 -c "import json,sys; d=json.load(open('$work/body')); print($1)"; }

bash "$here/scripts/cluster.sh" up --dir "$work/c" --nodes 3 --limit 3 --base-port "$base" \
    --build "$build" --ksf-t 1 --ksf-m-kib 1024 --ksf-p 1 >"$work/up.log" 2>&1 ||
    { cat "$work/up.log"; exit 1; }
. "$work/c/cluster.env"
leader=$(bash "$here/scripts/cluster.sh" leader --dir "$work/c")
follower=$((leader % 3 + 1))

check "/livez answers 200 ok" '[ "$(admin 1 /livez)" = 200 ] && grep -qx ok "$work/body"'
for i in 1 2 3; do
    wait_until 10 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$((base + 200 + i))/readyz) = 200 ]" &&
        ok "/readyz is 200 on node $i" || bad "/readyz is not 200 on node $i"
done

# /v1/status, field by field, on the leader and on a follower.
code=$(admin "$leader" /v1/status)
check "/v1/status answers 200 JSON" '[ "$code" = 200 ]'
check "status: id" '[ "$(field "d[\"id\"]")" = "$leader" ]'
check "status: role leader" '[ "$(field "d[\"role\"]")" = leader ]'
check "status: dc label" '[ -n "$(field "d[\"dc\"]")" ]'
check "status: term >= 1" '[ "$(field "d[\"term\"]")" -ge 1 ]'
check "status: leader id is itself" '[ "$(field "d[\"leader\"][\"id\"]")" = "$leader" ]'
check "status: leader gateway" '[ "$(field "d[\"leader\"][\"gateway\"]")" = "127.0.0.1:$((base + 100 + leader))" ]'
check "status: commit >= applied >= 1" '[ "$(field "d[\"commit_index\"] >= d[\"applied_index\"] >= 1")" = True ]'
check "status: three members with DCs" '[ "$(field "len(d[\"members\"])")" = 3 ]'
check "status: store counts" '[ "$(field "d[\"store\"][\"records\"] + d[\"store\"][\"tombstones\"]")" = 0 ]'
check "status: state hash is 64 hex" '[ "$(field "len(d[\"store\"][\"state_hash\"])")" = 64 ]'
check "status: HSM token" '[ "$(field "d[\"hsm\"][\"token\"]")" = "node-$leader" ]'
check "status: HSM state ok" '[ "$(field "d[\"hsm\"][\"state\"]")" = ok ]'
check "status: version and uptime" '[ "$(field "d[\"version\"] != \"\" and d[\"uptime_s\"] >= 0")" = True ]'
check "status: the leader's own last contact is 0" '[ "$(field "[m[\"last_contact_ms\"] for m in d[\"members\"] if m[\"id\"] == $leader]")" = "[0]" ]'
check "status: the leader heard from both followers within 2 s" '[ "$(field "sorted(0 <= m[\"last_contact_ms\"] < 2000 for m in d[\"members\"] if m[\"id\"] != $leader)")" = "[True, True]" ]'
admin "$follower" /v1/status >/dev/null
check "status on a follower: no per-member contact (only the leader knows it)" '[ "$(field "any(\"last_contact_ms\" in m for m in d[\"members\"])")" = False ]'
check "status on a follower: it heard from the leader within 2 s" '[ "$(field "0 <= d[\"leader_contact_ms\"] < 2000")" = True ]'
check "status on a follower: role and leader" '[ "$(field "d[\"role\"]")" = follower ] && [ "$(field "d[\"leader\"][\"id\"]")" = "$leader" ]'

# bkv-admin status draws every member by data center.
"$build/node/bkv-admin" status --admin "127.0.0.1:$((base + 201))" >"$work/drawn" 2>&1 && rc=0 || rc=$?
check "bkv-admin status exits 0 with a ready leader" '[ "$rc" = 0 ]'
check "bkv-admin status names the leader" 'grep -q "leader node $leader" "$work/drawn"'
check "bkv-admin status shows the leader's last contact with every node" '[ "$(grep -cE " contact [0-9]+ms " "$work/drawn")" = 3 ]'
check "bkv-admin status draws three ready nodes in three DCs" '[ "$(grep -c " ready$" "$work/drawn")" = 3 ] && [ "$(grep -c "^dc-" "$work/drawn")" = 3 ]'

# Requests move the counters.
metric() { curl -sS "http://127.0.0.1:$((base + 200 + leader))/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
before=$(metric 'bkv_registrations_total')
printf 'right password\n' >"$work/pw"
printf 'wrong password\n' >"$work/wpw"
bash "$here/scripts/cluster.sh" token --dir "$work/c" --account carol >"$work/token" 2>/dev/null
chmod 600 "$work/pw" "$work/wpw" "$work/token"
bkv=$build/client/bkv
$bkv keygen --out "$work/key" >/dev/null
conn=(--router "$BKV_ROUTER" --fingerprint "$BKV_FINGERPRINT" --account carol --token-file "$work/token")
$bkv register "${conn[@]}" --key-file "$work/key" --password-file "$work/pw" >/dev/null
$bkv recover "${conn[@]}" --password-file "$work/wpw" --out "$work/k1" >/dev/null 2>&1 || true
$bkv recover "${conn[@]}" --password-file "$work/pw" --out "$work/k2" >/dev/null
check "metrics: a registration counted" '[ "$(metric bkv_registrations_total)" = $((before + 1)) ]'
check "metrics: two login attempts counted" '[ "$(metric bkv_login_attempts_total)" = 2 ]'
check "metrics: one key released" '[ "$(metric bkv_keys_released_total)" = 1 ]'
check "metrics: a wrong password by type and outcome" '[ "$(metric "bkv_requests_total{type=\"login_finish\",outcome=\"wrong_password\"}")" = 1 ]'
check "metrics: request latency histogram counts" '[ "$(metric "bkv_request_duration_seconds_count{type=\"login_init\"}")" = 2 ]'
check "metrics: commit histogram counts" '[ "$(metric bkv_commit_duration_seconds_count)" -ge 4 ]'
check "metrics: HSM operations counted" '[ "$(metric "bkv_hsm_operations_total{op=\"decap\"}")" -ge 6 ]'
check "metrics: raft role gauge" '[ "$(metric "bkv_raft_role{role=\"leader\"}")" = 1 ]'
# A destroyed record's login does a live login's HSM work (a decoy) before it answers.
bash "$here/scripts/cluster.sh" token --dir "$work/c" --account dave >"$work/dtoken" 2>/dev/null
chmod 600 "$work/dtoken"
dconn=(--router "$BKV_ROUTER" --fingerprint "$BKV_FINGERPRINT" --account dave --token-file "$work/dtoken")
$bkv register "${dconn[@]}" --key-file "$work/key" --password-file "$work/pw" >/dev/null
for _ in 1 2 3; do $bkv recover "${dconn[@]}" --password-file "$work/wpw" --out "$work/k3" >/dev/null 2>&1 || true; done
unseals=$(metric 'bkv_hsm_operations_total{op="unseal"}')
$bkv recover "${dconn[@]}" --password-file "$work/pw" --out "$work/k3" >/dev/null 2>&1 && rc=0 || rc=$?
check "a destroyed record answers DESTROYED (exit 3)" '[ "$rc" = 3 ]'
check "after the same HSM unseal a live login does" '[ "$(metric "bkv_hsm_operations_total{op=\"unseal\"}")" = $((unseals + 1)) ]'
# Registering again over the tombstone (the REGISTER expects the tombstone's registration).
$bkv register "${dconn[@]}" --key-file "$work/key" --password-file "$work/pw" >/dev/null && rc=0 || rc=$?
check "a destroyed account registers a new key" '[ "$rc" = 0 ]'
$bkv recover "${dconn[@]}" --password-file "$work/pw" --out "$work/k4" >/dev/null 2>&1 && rc=0 || rc=$?
check "and recovers it" '[ "$rc" = 0 ] && cmp -s "$work/key" "$work/k4"'
curl -sS "http://127.0.0.1:$((base + 200 + leader))/metrics" >"$work/metrics.txt"
if promtool check metrics <"$work/metrics.txt" >"$work/promtool.out" 2>&1; then
    ok "promtool check metrics passes"
else
    bad "promtool check metrics: $(cat "$work/promtool.out")"
fi

# The end-to-end benchmark runs against this cluster (a smoke run; figures in docs/benchmarks.md).
"$build/tests/bkv-bench" vault --cluster "$work/c" --seconds 1 --levels 1 >"$work/bench.txt" 2>&1 || true
check "bkv-bench vault completes recoveries and prints the crypto ceiling" 'grep -q "crypto ceiling" "$work/bench.txt" && grep -qE "recoveries +1 clients +[0-9.]+ ops/s" "$work/bench.txt"'

# Refusals.
check "unknown admin page is 404" '[ "$(admin 1 /nope)" = 404 ]'
check "PUT to the admin endpoint is 405" '[ "$(curl -s -o /dev/null -w "%{http_code}" -X PUT http://127.0.0.1:$((base + 201))/v1/status)" = 405 ]'
check "a changing operation without the admin token is 401" '[ "$(curl -s -o /dev/null -w "%{http_code}" -X POST http://127.0.0.1:$((base + 201))/v1/leader/transfer)" = 401 ]'
snaps=$(metric bkv_raft_snapshots_taken_total)
check "snapshot now (with the token) answers 200" '[ "$(curl -s -o /dev/null -w "%{http_code}" -X POST -H "Authorization: Bearer $(cat "$work/c/secrets/admin.token")" http://127.0.0.1:$((base + 200 + leader))/v1/snapshot)" = 200 ]'
check "snapshot now took a snapshot on the leader" '[ "$(metric bkv_raft_snapshots_taken_total)" -gt "$snaps" ]'
check "snapshot now without the token is 401" '[ "$(curl -s -o /dev/null -w "%{http_code}" -X POST http://127.0.0.1:$((base + 200 + leader))/v1/snapshot)" = 401 ]'

# /readyz flips when the HSM token becomes unavailable (its files vanish under the node).
third=$((6 - leader - follower))
mv "$work/c/node-$third/hsm/tokens" "$work/c/node-$third/hsm/tokens.gone"
if wait_until 15 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$((base + 200 + third))/readyz) = 503 ]"; then
    ok "/readyz is 503 once the HSM token is gone"
    admin "$third" /readyz >/dev/null || true
    check "the reason names the HSM" 'field "d[\"reason\"]" | grep -q HSM'
    admin "$third" /v1/status >/dev/null
    check "status shows the HSM failing" '[ "$(field "d[\"hsm\"][\"state\"]")" = failing ]'
    check "the node's log names the failing PKCS#11 call" 'grep -q "hsm: health probe failed: .*C_" "$work/c/node-$third/node.log"'
else
    bad "/readyz stayed 200 with the HSM token gone"
fi
mv "$work/c/node-$third/hsm/tokens.gone" "$work/c/node-$third/hsm/tokens"

# The leader's last contact with a stopped member grows; the live one stays fresh.
bash "$here/scripts/cluster.sh" kill --dir "$work/c" --node "$third"
contact() { admin "$leader" /v1/status >/dev/null && field "[m.get(\"last_contact_ms\") for m in d[\"members\"] if m[\"id\"] == $1][0]"; }
contact_over() { local v; v=$(contact "$1") && [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -ge "$2" ]; }
if wait_until 15 contact_over "$third" 3000; then
    ok "the leader's last contact with a stopped member passes 3 s"
    check "while its last contact with the live follower stays under 2 s" '[ "$(contact "$follower")" -lt 2000 ]'
    "$build/node/bkv-admin" status --admin "127.0.0.1:$((base + 200 + leader))" >"$work/drawn" 2>&1 || true
    check "bkv-admin status draws the stopped node with the leader's last contact" 'grep -qE "node $third .*unreachable, leader.s last contact [0-9]+ms ago" "$work/drawn"'
else
    bad "the leader's last contact with stopped node $third stayed at $(contact "$third")"
fi

# /readyz flips when a node loses its leader: stop the leader as well.
bash "$here/scripts/cluster.sh" kill --dir "$work/c" --node "$leader"
if wait_until 15 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$((base + 200 + follower))/readyz) = 503 ]"; then
    ok "/readyz is 503 once the node has lost its leader"
    admin "$follower" /readyz >/dev/null || true
    check "/readyz 503 carries a JSON reason" '[ "$(field "d[\"ready\"]")" = False ] && [ -n "$(field "d[\"reason\"]")" ]'
else
    bad "/readyz stayed 200 without a leader"
fi
check "/livez is still 200 without a leader" '[ "$(admin "$follower" /livez)" = 200 ]'
"$build/node/bkv-admin" status --admin "127.0.0.1:$((base + 200 + follower))" >"$work/drawn" 2>&1 && rc=0 || rc=$?
check "bkv-admin status exits 3 without a leader, drawing the dead nodes" '[ "$rc" = 3 ] && [ "$(grep -c unreachable "$work/drawn")" = 2 ]'

# Every process stops cleanly, and the sanitizer build finds nothing in any of them.
bash "$here/scripts/cluster.sh" down --dir "$work/c" >/dev/null
if grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$work"/c/node-*/node.log \
    "$work/c/router/router.log" >"$work/san.txt"; then
    bad "sanitizer reports in: $(cat "$work/san.txt")"
else
    ok "no sanitizer report in any node or router log"
fi

echo "admin endpoint: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
