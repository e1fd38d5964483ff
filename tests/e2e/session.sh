#!/usr/bin/env bash
# e2e/session: a real 3-node cluster and router on loopback, with recording
# proxies between the client and the router and between the router and each
# node (scripts/cluster.sh --capture). It checks issue 5's tests 1, 2, 3, 5,
# 6 and 7:
#   1. register and recover through the router, with bkv-probe and with the
#      bkv CLI (keygen, encrypt, register, recover, decrypt, compare);
#   2. wrong passwords are counted (attempts_left goes down, over the probe
#      and the CLI), every counted attempt changes the replicated state, and
#      all nodes hold the same state hash once they applied the leader's
#      commit; a right password resets the counter;
#   3. after the limit the record is a tombstone on every node, the right
#      password gets DESTROYED (probe and CLI), and a replayed registration
#      does not bring it back: neither the same envelope (the store remembers
#      its request id) nor the same REG_FINISH under a new request id (as
#      once the store's request window has passed; its stale registration
#      ticket is refused);
#   5. an unknown account's LOGIN_INIT answer has the same size and the same
#      decrypted form as a real one (OK, a KE2 with valid points, the same
#      attempts fields), and only LOGIN_FINISH says NOT_REGISTERED;
#   7. bad input (broken HTTP, oversized body, bad/expired/missing tokens,
#      truncated or garbled envelopes, invalid points, replayed request ids
#      for LOGIN_INIT and REG_FINISH, an account mismatch, a request that
#      bypasses the router) gets a clear answer and leaves the state hash
#      unchanged; a replayed REG_FINISH does not reset the counter;
#   6. after all that, no password, K, export key, session key, OPAQUE record
#      (or part of one) or wrapped K appears as raw bytes, hex or base64 in
#      any node's directory (Raft log, snapshots, SQLite and its -wal, HSM
#      token), in any log, or in the captured bytes; the scan is run once
#      while the cluster is up and once after it stopped, and a planted
#      secret proves it can fail; no envelope bytes are logged or stored.
#
#   session.sh BUILD_DIR
set -u

BUILD=${1:?usage: session.sh BUILD_DIR}
BASE=${E2E_BASE_PORT:-21000}
T=$(mktemp -d "${TMPDIR:-/tmp}/bkv-e2e-session.XXXXXX")
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init

LIMIT=5
cluster_up --nodes 3 --limit "$LIMIT" --capture --snapshot-threshold 16 --log-level debug

secret_pw() { printf 'Pw-%s' "$(head -c 15 /dev/urandom | base64 | tr '+/' '._')"; }
SECRETS="$T/secrets.txt"
: >"$SECRETS"
# add_secrets PREFIX LINE: the probe's secret fields (and the record's parts).
add_secrets() {
    local f v
    for f in password_hex k export_key session_key record masking_key wrapped; do
        v=$(kv "$2" "$f")
        [ -n "$v" ] && echo "$1.$f $v" >>"$SECRETS"
    done
    v=$(kv "$2" record)
    if [ -n "$v" ]; then
        echo "$1.record_client_pk ${v:0:66}" >>"$SECRETS"
        echo "$1.record_envelope ${v:130:128}" >>"$SECRETS"
    fi
}
tokfile() {
    token "$1" >"$T/$1.token" && chmod 600 "$T/$1.token"
}

check "the router serves the key config the realm published" \
    bash -c "curl -fsS --max-time 5 http://$BKV_ROUTER/v1/keyconfig | cmp -s - '$BKV_KEYCONFIG'"

# --- 1. register and recover through the router ----------------------------------

for a in alice bob carol dave; do tokfile "$a"; done
PW_A=$(secret_pw)
L=$(probe register --account alice --token-file "$T/alice.token" --password "$PW_A")
add_secrets alice.reg "$L"
K_A=$(kv "$L" k)
expect_eq "1: probe registers alice" ok "$(kv "$L" result)"
expect_eq "1: the registration reports the limit" "$LIMIT" "$(kv "$L" max)"
L=$(probe recover --account alice --token-file "$T/alice.token" --password "$PW_A" --expect-key "$K_A")
add_secrets alice.rec "$L"
expect_eq "1: probe recovers alice's key" ok "$(kv "$L" result)"
expect_eq "1: the recovered key is the registered one" 1 "$(kv "$L" match)"
expect_eq "1: the recover's KE2 has valid points" 1 "$(kv "$L" ke2_points)"

# The bkv CLI, end to end.
CLI=(--router "$BKV_ROUTER" --account bob --token-file "$T/bob.token")
PW_B=$(secret_pw)
printf '%s\n' "$PW_B" >"$T/bob.pw"
chmod 600 "$T/bob.pw"
printf 'bob.password_hex %s\n' "$(printf '%s' "$PW_B" | od -An -tx1 | tr -d ' \n')" >>"$SECRETS"
head -c 300000 /dev/urandom >"$T/backup.bin"
check "1: bkv keygen" "$BKV" keygen --out "$T/bob.key"
K_B=$(tr -cd '0-9a-f' <"$T/bob.key" | head -c 64)
[ ${#K_B} -eq 64 ] && echo "bob.k $K_B" >>"$SECRETS"
check "1: bkv encrypt" "$BKV" encrypt --key-file "$T/bob.key" --in "$T/backup.bin" --out "$T/backup.enc"
check "1: bkv register (pinned key config file)" \
    "$BKV" register "${CLI[@]}" --keyconfig "$BKV_KEYCONFIG" --key-file "$T/bob.key" \
    --password-file "$T/bob.pw"
check "1: bkv recover (pinned by fingerprint)" \
    "$BKV" recover "${CLI[@]}" --fingerprint "$BKV_FINGERPRINT" --out "$T/bob.key2" \
    --password-file "$T/bob.pw"
check "1: the recovered key file holds the same key" \
    test "$(tr -cd '0-9a-f' <"$T/bob.key2" 2>/dev/null | head -c 64)" = "$K_B"
check "1: bkv decrypt with the recovered key" \
    "$BKV" decrypt --key-file "$T/bob.key2" --in "$T/backup.enc" --out "$T/backup.out"
check "1: the decrypted backup equals the original" cmp -s "$T/backup.bin" "$T/backup.out"

# --- 2. wrong passwords are counted, the same on every node ------------------------

converged "2: converged before the guesses"
H0=$HASH
WRONG="Wrong-$(secret_pw)"
L=$(probe login --account alice --token-file "$T/alice.token" --password "$WRONG")
expect_eq "2: a wrong password gets a KE2" 1 "$(kv "$L" ke2)"
expect_eq "2: the client cannot open the envelope" envelope "$(kv "$L" client)"
expect_eq "2: the vault says WRONG_PASSWORD" WRONG_PASSWORD "$(kv "$L" finish_status)"
expect_eq "2: attempts_left after one wrong password" $((LIMIT - 1)) "$(kv "$L" finish_left)"
converged "2: all nodes agree after one wrong password"
H1=$HASH
check "2: the counted attempt changed the replicated state" test -n "$H1" -a "$H1" != "$H0"
L=$(probe login --account alice --token-file "$T/alice.token" --password "$WRONG")
expect_eq "2: attempts_left after two wrong passwords" $((LIMIT - 2)) "$(kv "$L" finish_left)"
"$BKV" recover --router "$BKV_ROUTER" --account alice --token-file "$T/alice.token" \
    --keyconfig "$BKV_KEYCONFIG" --password-stdin --out "$T/alice.nokey" \
    <<<"$WRONG" >"$T/cli-wrong.out" 2>&1
rc=$?
expect_eq "2: bkv recover with a wrong password exits 2" 2 "$rc"
check "2: bkv says how many attempts are left ($((LIMIT - 3)))" \
    grep -q "$((LIMIT - 3)) attempts left" "$T/cli-wrong.out"
converged "2: all nodes hold the same counter state"
H3=$HASH
check "2: three counted attempts, three different states" test "$H3" != "$H1" -a "$H3" != "$H0"
L=$(probe recover --account alice --token-file "$T/alice.token" --password "$PW_A" --expect-key "$K_A")
add_secrets alice.rec2 "$L"
expect_eq "2: the right password still recovers the key" 1 "$(kv "$L" match)"
expect_eq "2: its LOGIN_INIT shows the attempts left" $((LIMIT - 4)) "$(kv "$L" init_left)"
L=$(probe login --account alice --token-file "$T/alice.token" --password "$WRONG")
expect_eq "2: a success reset the counter" $((LIMIT - 1)) "$(kv "$L" finish_left)"
L=$(probe recover --account alice --token-file "$T/alice.token" --password "$PW_A" --expect-key "$K_A")
add_secrets alice.rec3 "$L"
expect_eq "2: and the key is still there" 1 "$(kv "$L" match)"

# --- 3. the limit destroys the record on every node ---------------------------------

converged "3: converged before carol"
T0=$(kv "$CONV" tombstones)
PW_C=$(secret_pw)
L=$(probe register --account carol --token-file "$T/carol.token" --password "$PW_C" --save "$T/carol.regfinish")
add_secrets carol.reg "$L"
expect_eq "3: carol registered" ok "$(kv "$L" result)"
L=$(probe guess --account carol --token-file "$T/carol.token" --password "$WRONG" --count $((LIMIT + 5)))
echo "# $L"
expect_eq "3: exactly LIMIT KE2s for LIMIT wrong passwords" "$LIMIT" "$(kv "$L" ke2)"
expect_eq "3: their attempts_left count down" "$(seq -s, $((LIMIT - 1)) -1 0)" "$(kv "$L" lefts)"
expect_eq "3: the last wrong KE3 destroys the key" "1 finish" "$(kv "$L" destroyed) $(kv "$L" destroyed_at)"
expect_eq "3: no other outcome" "0 0 0" "$(kv "$L" other) $(kv "$L" http_other) $(kv "$L" unexpected_ok)"
converged "3: converged"
expect_eq "3: one more tombstone on every node" $((T0 + 1)) "$(kv "$CONV" tombstones)"
for i in $(seq 1 "$BKV_NODES"); do
    expect_eq "3: node-$i counts the tombstone" $((T0 + 1)) \
        "$("${HELPER[@]}" field --base "$BKV_BASE" --node "$i" store.tombstones)"
done
L=$(probe recover --account carol --token-file "$T/carol.token" --password "$PW_C")
expect_eq "3: the right password gets DESTROYED, no KE2" "DESTROYED 0" \
    "$(kv "$L" init_status) $(kv "$L" ke2)"
"$BKV" recover --router "$BKV_ROUTER" --account carol --token-file "$T/carol.token" \
    --keyconfig "$BKV_KEYCONFIG" --password-stdin --out "$T/carol.nokey" \
    <<<"$PW_C" >"$T/cli-destroyed.out" 2>&1
expect_eq "3: bkv recover of a destroyed key exits 3" 3 "$?"
check "3: bkv says the key was destroyed" grep -qi destroyed "$T/cli-destroyed.out"
converged "3: converged after the destruction"
HD=$HASH
L=$(probe replay --envelope "$T/carol.regfinish" --account carol --token-file "$T/carol.token")
echo "# replayed carol's REG_FINISH: $L"
converged "3: converged after the replay"
expect_eq "3: a replayed registration changes nothing" "$HD" "$HASH"
# The same REG_FINISH under a new request id: what the node sees once the
# store's request window forgot the old one. Only its ticket stops it.
L=$(probe replay --fresh-id --envelope "$T/carol.regfinish" --account carol --token-file "$T/carol.token")
expect_eq "3: an old REG_FINISH after the request window -> stale ticket" "200 SESSION_UNKNOWN" \
    "$(kv "$L" http) $(kv "$L" status)"
converged "3: converged after the fresh-id replay"
expect_eq "3: ... and changes nothing" "$HD" "$HASH"
L=$(probe recover --account carol --token-file "$T/carol.token" --password "$PW_C")
expect_eq "3: and the record stays destroyed" DESTROYED "$(kv "$L" init_status)"

# --- 5. an unknown account looks like a real one ------------------------------------

UNK="nobody-$RANDOM$RANDOM"
L=$(probe unknown --account alice --token-file "$T/alice.token" --password "$PW_A" \
    --unknown-account "$UNK" --unknown-token "$(token "$UNK")")
echo "# $L"
add_secrets alice.unk "$L"
expect_eq "5: both LOGIN_INITs answered 200" "200 200" "$(kv "$L" k_http) $(kv "$L" u_http)"
expect_eq "5: the same response body length" "$(kv "$L" k_body_len)" "$(kv "$L" u_body_len)"
expect_eq "5: the same inner status" "OK OK" "$(kv "$L" k_status) $(kv "$L" u_status)"
expect_eq "5: the same payload length (session id + KE2)" "275 275" \
    "$(kv "$L" k_payload_len) $(kv "$L" u_payload_len)"
expect_eq "5: both KE2s have valid points" "1 1" "$(kv "$L" k_points) $(kv "$L" u_points)"
expect_eq "5: the same attempts fields" "$(kv "$L" k_left)/$(kv "$L" k_max)" \
    "$(kv "$L" u_left)/$(kv "$L" u_max)"
expect_eq "5: the unknown KE2 fails like a wrong password" envelope "$(kv "$L" u_client)"
expect_eq "5: the known one opens" ok "$(kv "$L" k_client)"
expect_eq "5: only LOGIN_FINISH tells NOT_REGISTERED" NOT_REGISTERED "$(kv "$L" u_finish_status)"
expect_eq "5: the real login completes" OK "$(kv "$L" k_finish_status)"

# --- 7. bad input changes nothing and gets a clear answer ---------------------------

converged "7: converged before the bad input"
HB=$HASH
RB="$(kv "$CONV" records)/$(kv "$CONV" tombstones)"
bad_case() { # NAME WANT_HTTP [WANT_STATUS] [probe args]
    local name=$1 http=$2 st=${3:--} line
    shift 3
    line=$(probe bad --case "$name" --account alice --token-file "$T/alice.token" "$@")
    expect_eq "7: $name -> HTTP $http, inner $st" "$http $st" "$(kv "$line" http) $(kv "$line" status)"
    [ -n "$(kv "$line" text)" ] && echo "#   answer: $(kv "$line" text)"
}
bad_case garbage 400 -
bad_case short 400 -
bad_case truncated 400 -
bad_case oversized 413 -
bad_case invalid-enc 400 -
bad_case wrong-key-id 400 -
bad_case bad-inner 400 -
bad_case invalid-point 200 BAD_REQUEST
bad_case identity-point 200 BAD_REQUEST
bad_case invalid-keyshare 200 BAD_REQUEST
bad_case bad-record 200 BAD_REQUEST
bad_case account-mismatch 403 - --other-account bob
bad_case forged-session 200 SESSION_UNKNOWN
bad_case no-token 401 -
bad_case bad-token 401 -
bad_case tampered-token 401 -
bad_case foreign-token 401 -
bad_case expired-token 401 - --router-key "$T/c/router/router.key"
http_case() { # NAME WANT...
    local name=$1 line
    shift
    line=$("${HELPER[@]}" http --addr "$BKV_ROUTER_DIRECT" --case "$name")
    expect_in "7: broken HTTP $name" "$(kv "$line" status)" "$@"
}
http_case garbage 400
http_case bad-request-line 400
http_case bad-header 400
http_case huge-header 431 400
http_case bad-chunked 400 501 # node/http.c answers every chunked body 501 (not supported)
http_case cl-te 400
http_case bad-length 400
http_case oversized-length 413
http_case short-body 400 408 0
http_case wrong-method 405
http_case unknown-path 404
# A caller that bypasses the router: the leader's gateway wants a router proof.
LID=$(kv "$CONV" leader)
GW="127.0.0.1:$((BKV_BASE + 100 + LID))"
head -c 600 "$T/backup.enc" >"$T/body600"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST --data-binary @"$T/body600" \
    -H 'X-BKV-Account: alice' "http://$GW/v1/vault")
expect_eq "7: a request without a router proof, straight to the leader" 401 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST --data-binary @"$T/body600" \
    -H 'X-BKV-Account: alice' -H "X-BKV-Router-Time: $(date +%s)" \
    -H "X-BKV-Router-Proof: $(printf '%064d' 0)" "http://$GW/v1/vault")
expect_eq "7: a forged router proof" 401 "$code"
check "7: the router still serves after the broken input" \
    curl -fsS --max-time 5 -o /dev/null "http://$BKV_ROUTER_DIRECT/v1/keyconfig"
converged "7: converged after the bad input"
expect_eq "7: the bad input left the state hash unchanged" "$HB" "$HASH"
expect_eq "7: and the record counts" "$RB" "$(kv "$CONV" records)/$(kv "$CONV" tombstones)"

# Replayed request ids: a LOGIN_INIT sent again gets REPLAYED and no second KE2.
L=$(probe login --account alice --token-file "$T/alice.token" --password "$WRONG" --save "$T/alice.init")
expect_eq "7: a counted wrong login" WRONG_PASSWORD "$(kv "$L" finish_status)"
converged "7: converged after a counted wrong login"
HR=$HASH
L=$(probe replay --envelope "$T/alice.init" --account alice --token-file "$T/alice.token")
expect_eq "7: a replayed LOGIN_INIT -> REPLAYED, no KE2" "200 REPLAYED" "$(kv "$L" http) $(kv "$L" status)"
check "7: ... and no KE2 in it" test -z "$(kv "$L" ke2)"
converged "7: converged after the LOGIN_INIT replay"
expect_eq "7: the replay left the state hash unchanged" "$HR" "$HASH"
# A replayed REG_FINISH must not reset the counter.
PW_D=$(secret_pw)
L=$(probe register --account dave --token-file "$T/dave.token" --password "$PW_D" --save "$T/dave.regfinish")
add_secrets dave.reg "$L"
for _ in 1 2; do probe login --account dave --token-file "$T/dave.token" --password "$WRONG" >/dev/null; done
converged "7: converged after dave's wrong logins"
HR=$HASH
L=$(probe replay --envelope "$T/dave.regfinish" --account dave --token-file "$T/dave.token")
echo "# replayed dave's REG_FINISH: $L"
converged "7: converged after the REG_FINISH replay"
expect_eq "7: a replayed REG_FINISH leaves the state hash unchanged" "$HR" "$HASH"
L=$(probe replay --fresh-id --envelope "$T/dave.regfinish" --account dave --token-file "$T/dave.token")
expect_eq "7: the same REG_FINISH under a new request id -> stale ticket" "200 SESSION_UNKNOWN" \
    "$(kv "$L" http) $(kv "$L" status)"
converged "7: converged after the fresh-id REG_FINISH"
expect_eq "7: ... and the state hash is unchanged" "$HR" "$HASH"
L=$(probe login --account dave --token-file "$T/dave.token" --password "$WRONG")
expect_eq "7: neither replay reset the counter" $((LIMIT - 3)) "$(kv "$L" finish_left)"

# --- 6. no secret in the nodes' files, the logs or the captured bytes ---------------

check "6: the client-router capture saw vault requests" grep -q 'POST /v1/vault' "$BKV_CAPTURE/client.up"
for i in $(seq 1 "$BKV_NODES"); do
    [ -s "$BKV_CAPTURE/node-$i.up" ] && grep -q -i 'x-bkv-router-proof' "$BKV_CAPTURE/node-$i.up" &&
        ok "6: the router-node-$i capture saw forwarded requests" ||
        echo "# node-$i was never forwarded to (only the leader must be)"
done
check "6: the leader's capture saw forwarded requests" grep -q -i 'x-bkv-router-proof' "$BKV_CAPTURE/node-$LID.up"
check "6: some node took a snapshot" bash -c "ls '$T'/c/node-*/data/snapshots/* >/dev/null 2>&1 || ls '$T'/c/node-*/data/raft/snapshot-* >/dev/null 2>&1"
echo "# $(wc -l <"$SECRETS") secrets to look for"
SCAN=("${HELPER[@]}" leakscan --secrets "$SECRETS" --expect state.db --expect /raft/ --expect node.log
    --expect router.log --expect client.up --expect client.down --expect "node-$LID.up"
    --expect "node-$LID.down")
if "${SCAN[@]}" --expect state.db-wal "$T/c" >"$T/scan-live.out" 2>&1; then
    ok "6: no secret in the running cluster's files, logs or captures ($(tail -1 "$T/scan-live.out"))"
else
    cat "$T/scan-live.out"
    bad "6: secrets found in the running cluster"
fi
# Nor does any log or data directory hold the envelopes the router forwarded
# (their HPKE enc, as raw bytes, hex or base64).
if "${HELPER[@]}" bodies "$BKV_CAPTURE/client.up" >"$T/envelopes.txt" &&
    "${HELPER[@]}" leakscan --secrets "$T/envelopes.txt" --expect router.log --expect node.log \
        --expect state.db "$T/c/router" "$T"/c/node-* >"$T/scan-env.out" 2>&1; then
    ok "6: no envelope bytes in the logs or data ($(tail -1 "$T/scan-env.out"))"
else
    head -20 "$T/scan-env.out"
    bad "6: envelope bytes found in the logs or data"
fi
# The scan can fail: plant one secret, hex-encoded, in a copy of a log.
mkdir -p "$T/plant"
{ cat "$T/c/router/router.log"; echo "debug: $K_A"; } >"$T/plant/router.log"
if "${HELPER[@]}" leakscan --secrets "$SECRETS" "$T/plant" >"$T/scan-plant.out" 2>&1; then
    bad "6: the leak scan missed a planted key"
else
    check "6: the leak scan finds a planted key" grep -q 'LEAK alice.reg.k as hex' "$T/scan-plant.out"
fi

"$CLUSTER" down --dir "$T/c" >/dev/null 2>&1
if "${SCAN[@]}" "$T/c" >"$T/scan-down.out" 2>&1; then
    ok "6: no secret in the stopped cluster's files ($(tail -1 "$T/scan-down.out"))"
else
    cat "$T/scan-down.out"
    bad "6: secrets found in the stopped cluster"
fi
check_sanitizer_logs
e2e_finish
