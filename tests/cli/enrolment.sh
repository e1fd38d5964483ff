#!/usr/bin/env bash
# The HSM enrolment ceremony with bkv-admin, as an operator runs it: one
# process per step and one SoftHSM2 configuration and token per node, in a
# fresh temporary directory. The new node's side is one long-running
# "enrol join" process (its transport key exists only inside it), run in the
# background; every wait is for a condition, with a deadline. Asserts what
# each step must and must not do, with the specific error text of each case.
#
#   enrolment.sh PATH-TO-bkv-admin
set -euo pipefail

admin=$1
work=$(mktemp -d /tmp/bkv-enrol.XXXXXX)
joins=()
cleanup() {
    for p in "${joins[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
# expect_fail "description" "text the error must contain" command...
expect_fail() {
    local what=$1 want=$2
    shift 2
    if "$@" >out.txt 2>err.txt; then
        bad "$what: succeeded but must fail"
    elif grep -qF -- "$want" err.txt; then
        ok "$what"
    else
        bad "$what: error does not mention '$want': $(cat err.txt)"
    fi
}
expect_ok() {
    local what=$1
    shift
    if "$@" >out.txt 2>err.txt; then ok "$what"; else bad "$what: $(cat err.txt)"; fi
}
# wait_until SECONDS command...: poll a condition until it holds or the deadline passes.
wait_until() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.05
    done
}
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! alive "$1"; }

printf '1234\n' >pin
printf 'so-secret\n' >sopin
chmod 600 pin sopin
printf 'victim content\n' >victim
hsm() { echo --node-dir "$work/n$1" --token "node-$1" --pin-file pin; }

# join_start NODE NAME [extra args]: run "enrol join" for node NODE in the
# background with NAME.req / NAME.blob / NAME.out / NAME.err; wait until it
# waits for its blob and set join_pid and join_fp.
join_start() {
    local n=$1 name=$2
    shift 2
    rm -f "$name.blob" "$name.out" "$name.err" # never read a previous run's output
    "$admin" enrol join $(hsm "$n") --request-out "$name.req" --blob "$name.blob" \
        --realm realm --timeout 120 "$@" >"$name.out" 2>"$name.err" &
    join_pid=$!
    joins+=("$join_pid")
    if wait_until 60 grep -q '^waiting for' "$name.out"; then
        join_fp=$(sed -n 's/^fingerprint: *//p' "$name.out")
    else
        join_fp=
        bad "enrol join on node-$n did not start waiting: $(cat "$name.err")"
    fi
}
# join_end PID: wait (with a deadline) for a join to exit; sets join_rc.
join_end() {
    local pid=$1
    join_rc=0
    if ! wait_until 60 dead "$pid"; then
        kill "$pid" 2>/dev/null || true
        bad "enrol join (pid $pid) did not exit in time"
    fi
    wait "$pid" || join_rc=$?
}
# approve_for NAME FP OUT: approve NAME's request on node-1, writing the blob to OUT.
approve_for() {
    "$admin" enrol approve $(hsm 1) --so-pin-file sopin --request "$1.req" \
        --fingerprint "$2" --realm realm --out "$3" >out.txt 2>err.txt
}
# expect_join_fail "description" "text" NAME PID: the join must exit non-zero saying text.
expect_join_fail() {
    local what=$1 want=$2 name=$3 pid=$4
    join_end "$pid"
    if [ "$join_rc" -eq 0 ]; then
        bad "$what: enrol join succeeded but must fail"
    elif grep -qF -- "$want" "$name.err"; then
        ok "$what"
    else
        bad "$what: error does not mention '$want': $(cat "$name.err")"
    fi
}

for n in 1 2 3; do
    expect_ok "token init node-$n" "$admin" token init $(hsm $n) --so-pin-file sopin
done
expect_fail "a second token with the same label is refused" \
    'a token with this label already exists' \
    "$admin" token init $(hsm 1) --so-pin-file sopin

# PIN handling: a PIN file others can read, and a wrong PIN, name the token.
printf '1234\n' >loose-pin
chmod 644 loose-pin
expect_fail "a PIN file readable by others is refused" "has mode 0644, so other users may read it" \
    "$admin" hsm status --node-dir "$work/n1" --token node-1 --pin-file loose-pin
printf '9999\n' >wrong-pin
chmod 600 wrong-pin
expect_fail "a wrong PIN is refused with the token's name" 'open token "node-1": C_Login' \
    "$admin" hsm status --node-dir "$work/n1" --token node-1 --pin-file wrong-pin
grep -q CKR_PIN_INCORRECT err.txt && ok "wrong PIN error shows CKR_PIN_INCORRECT" ||
    bad "wrong PIN error lacks CKR_PIN_INCORRECT: $(cat err.txt)"
expect_fail "a missing token label is reported" 'open token "node-9": no token with this label' \
    "$admin" hsm status --node-dir "$work/n1" --token node-9 --pin-file pin
expect_fail "a missing module is reported" 'PKCS#11 module /nonexistent/libpkcs11.so' \
    "$admin" hsm status $(hsm 1) --module /nonexistent/libpkcs11.so
expect_fail "a hardware HSM without a lock directory is refused" 'no lock directory' \
    "$admin" hsm status --token node-1 --pin-file pin

expect_ok "realm create on node-1" "$admin" realm create $(hsm 1) --out realm
[ -f realm/realm.bin ] && [ -f realm/opaque-secrets.sealed ] && ok "realm files written" ||
    bad "realm files missing"
[ "$(stat -c %s realm/realm.bin)" -eq 228 ] && ok "realm.bin is a version-2 description" ||
    bad "realm.bin has $(stat -c %s realm/realm.bin) bytes"
expect_fail "realm create refuses a token that holds a realm" "the token already holds realm" \
    "$admin" realm create $(hsm 1) --out realm-again
[ -z "$(ls -A realm-again)" ] && ok "nothing left in the refused output directory" ||
    bad "realm-again holds $(ls -A realm-again)"
# The output paths are checked before the token is touched.
expect_fail "realm create refuses existing output files before it touches the token" \
    "realm/opaque-secrets.sealed already exists; refusing to overwrite it" \
    "$admin" realm create $(hsm 3) --out realm
mkdir realm-sym && ln -s "$work/victim" realm-sym/realm.bin
expect_fail "realm create refuses a symlink at an output path" \
    "realm-sym/realm.bin already exists; refusing to overwrite it" \
    "$admin" realm create $(hsm 3) --out realm-sym
expect_ok "node-3 is still fresh after the refused realm creations" "$admin" hsm status $(hsm 3)
grep -q 'none (not enrolled)' out.txt && ok "node-3 holds no realm" || bad "node-3: $(cat out.txt)"
expect_fail "node-2 is not enrolled yet" "HSM not yet enrolled in a realm" \
    "$admin" hsm check $(hsm 2) --realm realm

# The old two-step commands are gone: their transport key lived in the token.
expect_fail "enrol request is replaced by enrol join" "replaced by enrol join" \
    "$admin" enrol request $(hsm 2) --out req
expect_fail "enrol accept is replaced by enrol join" "replaced by enrol join" \
    "$admin" enrol accept $(hsm 2) --blob blob --realm realm

# Files are written without following symlinks: the victim file must never change.
ln -s "$work/victim" j2a.req
for p in $(seq $$ $(($$ + 200))); do ln -s "$work/victim" "j2a.req.tmp.$p"; done

# --- node-2: a first join, approved, whose blob is then tested elsewhere ---------
join_start 2 j2a
j2a_pid=$join_pid
fp=$join_fp
[ ${#fp} -eq 79 ] && ok "fingerprint printed in groups of 4" || bad "fingerprint '$fp'"
[ -f j2a.req ] && [ ! -L j2a.req ] && ok "the request replaced the symlink at its path" ||
    bad "j2a.req is not a regular file"
[ "$(cat victim)" = "victim content" ] && ok "no planted symlink was followed" ||
    bad "the victim file was overwritten: $(cat victim)"
join_start 3 j3
j3_pid=$join_pid

wrong_fp="0000${fp:4}"
expect_fail "approval with the wrong fingerprint is refused" \
    "the request's key does not have the fingerprint you gave" \
    "$admin" enrol approve $(hsm 1) --so-pin-file sopin --request j2a.req \
    --fingerprint "$wrong_fp" --realm realm --out blob-wrong
[ ! -e blob-wrong ] && ok "no blob written for a refused approval" || bad "blob written"
expect_fail "approval with the wrong SO PIN is refused" "C_Login(SO): CKR_PIN_INCORRECT" \
    "$admin" enrol approve $(hsm 1) --so-pin-file wrong-pin --request j2a.req \
    --fingerprint "$fp" --realm realm --out blob-wrong
ln -s "$work/victim" blob-link
expect_fail "approval refuses to write its blob through a symlink" \
    "blob-link already exists; refusing to overwrite it" approve_for j2a "$fp" blob-link
[ "$(cat victim)" = "victim content" ] && ok "the victim file is unchanged" || bad "victim changed"
if approve_for j2a "$fp" b2a; then ok "approval of node-2's request"; else
    bad "approval of node-2's request: $(cat err.txt)"
fi

# The blob holds no key in the clear and is useless to a third token.
cp b2a j3.blob
expect_join_fail "node-3 cannot use node-2's blob" "the blob was made for transport key" j3 "$j3_pid"
grep -qF "enrolment request not approved" j3.err && ok "node-3's refusal says not approved" ||
    bad "node-3's refusal: $(cat j3.err)"
expect_fail "node-3 is still not enrolled" "HSM not yet enrolled in a realm" \
    "$admin" hsm check $(hsm 3) --realm realm

# The transport key dies with its process: the approved blob is then useless.
kill -TERM "$j2a_pid"
join_end "$j2a_pid"
[ "$join_rc" -ne 0 ] && ok "an interrupted enrol join exits non-zero" || bad "it exited 0"
join_start 2 j2b
cp b2a j2b.blob
expect_join_fail "a blob for a transport key whose process ended is refused" \
    "the blob was made for transport key" j2b "$join_pid"

# A join that gets no blob gives up at its deadline; a stale blob is refused.
"$admin" enrol join $(hsm 2) --request-out jt.req --blob jt.blob --realm realm \
    --timeout 1 >jt.out 2>jt.err &
jt_pid=$!
joins+=("$jt_pid")
expect_join_fail "enrol join gives up at its deadline" "no enrolment blob at jt.blob after 1 s" \
    jt "$jt_pid"
touch stale.blob
expect_fail "enrol join refuses a blob left from an earlier run" \
    "stale.blob already exists: remove it first" \
    "$admin" enrol join $(hsm 2) --request-out js.req --blob stale.blob --realm realm

# A tampered blob is refused in every region and leaves node-2 unenrolled.
size=$(stat -c %s b2a)
declare -A want=(
    [8]="the blob is for realm"
    [40]="the enrolment blob is malformed (invalid P-256 point)"
    [120]="the enrolment blob is malformed (invalid P-256 point)"
    [200]="the enrolment blob is malformed (invalid P-256 point)"
    [300]="the wrapped MAC key does not unwrap"
    [$((size - 40))]="the blob's check value does not match"
    [$((size - 1))]="the blob's check value does not match"
)
for off in 8 40 120 200 300 $((size - 40)) $((size - 1)); do
    join_start 2 jx
    pid=$join_pid
    if ! approve_for jx "$join_fp" bx; then
        bad "approval for the tamper test at $off: $(cat err.txt)"
        kill "$pid"
        continue
    fi
    byte=$(od -An -tu1 -j "$off" -N1 bx | tr -d ' ')
    printf "$(printf '\\%03o' $(((byte + 1) % 256)))" |
        dd of=bx bs=1 seek="$off" conv=notrunc status=none
    mv bx jx.blob
    expect_join_fail "a blob with byte $off changed is refused" "${want[$off]}" jx "$pid"
    rm -f jx.blob
done
expect_fail "node-2 is still not enrolled after the tampered blobs" \
    "HSM not yet enrolled in a realm" "$admin" hsm check $(hsm 2) --realm realm

# --- node-2: the real enrolment --------------------------------------------------
join_start 2 j2
j2_pid=$join_pid
if approve_for j2 "$join_fp" j2.blob; then ok "approval of node-2's new request"; else
    bad "approval of node-2's new request: $(cat err.txt)"
fi
join_end "$j2_pid"
[ "$join_rc" -eq 0 ] && ok "node-2 accepts its blob and enrol join exits 0" ||
    bad "enrol join on node-2 failed: $(cat j2.err)"
grep -q '^enrolled: token "node-2"' j2.out && ok "enrol join reports the enrolment" ||
    bad "enrol join output: $(cat j2.out)"
expect_fail "the blob cannot be replayed" "make transport key: invalid argument" \
    "$admin" enrol join $(hsm 2) --request-out jr.req --blob jr.blob --realm realm
grep -qF "the token already holds a realm" err.txt && ok "replay refused: node-2 holds a realm" ||
    bad "replay refusal: $(cat err.txt)"

# After enrolment node-2 does what node-1 does: same MAC, HPKE, OPAQUE secrets.
expect_ok "hsm check on node-1" "$admin" hsm check $(hsm 1) --realm realm --account alice
mac1=$(sed -n 's/^account MAC: *//p' out.txt)
expect_ok "hsm check on node-2" "$admin" hsm check $(hsm 2) --realm realm --account alice
mac2=$(sed -n 's/^account MAC: *//p' out.txt)
grep -q 'realm matches --realm:     yes' out.txt && ok "node-2 holds exactly the pinned realm" ||
    bad "node-2 pinned check"
grep -q 'HPKE decapsulation in HSM: ok' out.txt && ok "node-2 decapsulates to the realm key" ||
    bad "node-2 HPKE"
grep -q 'OPAQUE secrets unsealed:   yes' out.txt && ok "node-2 unseals node-1's secrets" ||
    bad "node-2 unseal"
[ -n "$mac1" ] && [ "$mac1" = "$mac2" ] && ok "node-1 and node-2 compute the same account MAC" ||
    bad "account MACs differ: '$mac1' vs '$mac2'"
expect_ok "hsm status with --realm verifies node-2" "$admin" hsm status $(hsm 2) --realm realm
grep -q 'matches --realm: *yes' out.txt && ok "hsm status says the realm matches" ||
    bad "hsm status: $(cat out.txt)"

# Another realm's description is refused as the pin, by every command.
expect_ok "realm create on node-3 (a second realm)" "$admin" realm create $(hsm 3) --out realm3
expect_fail "hsm check refuses a token that holds another realm than --realm" \
    "not the pinned realm" "$admin" hsm check $(hsm 2) --realm realm3
grep -qF "do not use it" err.txt && ok "the refusal says not to use the token" ||
    bad "refusal text: $(cat err.txt)"
expect_fail "approve refuses a member whose realm is not --realm" "not the pinned realm" \
    "$admin" enrol approve $(hsm 1) --so-pin-file sopin --request j2.req \
    --fingerprint "$fp" --realm realm3 --out blob-other

# A write failure after the realm exists (injected with strace: the link of
# realm.bin fails) says exactly how to recover, and the recovery works.
if command -v strace >/dev/null; then
    expect_ok "token init node-4" "$admin" token init $(hsm 4) --so-pin-file sopin
    expect_fail "realm create reports a realm.bin it could not write" \
        "the realm now exists in token \"node-4\", but realm4/realm.bin was not written" \
        strace -qq -o /dev/null -e trace=linkat -e inject=linkat:error=ENOSPC:when=2 \
        "$admin" realm create $(hsm 4) --out realm4
    [ -f realm4/opaque-secrets.sealed ] && ok "the sealed secrets were written first" ||
        bad "realm4/opaque-secrets.sealed missing"
    sed -n '/^  base64 -d/,/^  EOF/p' err.txt | sed 's/^  //' >recover.sh
    if bash recover.sh && "$admin" hsm check $(hsm 4) --realm realm4 >out.txt 2>&1; then
        ok "the printed recovery restores a realm that checks"
    else
        bad "recovery failed: $(cat out.txt)"
    fi
else
    echo "skip - strace not installed: no write-failure injection"
fi

# Nothing secret on disk in the clear: the realm files hold no PIN.
if grep -qF -- "so-secret" realm/* j2.blob j2.req; then bad "a PIN appears in an output file"; else
    ok "no PIN in any output file"
fi
[ "$(cat victim)" = "victim content" ] && ok "the victim file never changed" || bad "victim changed"

echo "enrolment: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
