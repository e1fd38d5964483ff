#!/usr/bin/env bash
# The HSM enrolment ceremony with bkv-admin, as an operator runs it: one
# process per step and one SoftHSM2 configuration and token per node, in a
# fresh temporary directory. Asserts what each step must and must not do.
#
#   enrolment.sh PATH-TO-bkv-admin
set -euo pipefail

admin=$1
work=$(mktemp -d /tmp/bkv-enrol.XXXXXX)
trap 'rm -rf "$work"' EXIT
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

printf '1234\n' >pin
printf 'so-secret\n' >sopin
chmod 600 pin sopin
hsm() { echo --node-dir "$work/n$1" --token "node-$1" --pin-file pin; }

for n in 1 2 3; do
    expect_ok "token init node-$n" "$admin" token init $(hsm $n) --so-pin-file sopin
done
expect_fail "a second token with the same label is refused" "already" \
    "$admin" token init $(hsm 1) --so-pin-file sopin

# PIN handling: a PIN file others can read, and a wrong PIN, name the token.
printf '1234\n' >loose-pin
chmod 644 loose-pin
expect_fail "a PIN file readable by others is refused" "chmod" \
    "$admin" hsm status --node-dir "$work/n1" --token node-1 --pin-file loose-pin
printf '9999\n' >wrong-pin
chmod 600 wrong-pin
expect_fail "a wrong PIN is refused with the token's name" 'node-1' \
    "$admin" hsm status --node-dir "$work/n1" --token node-1 --pin-file wrong-pin
grep -q CKR_PIN_INCORRECT err.txt && ok "wrong PIN error shows CKR_PIN_INCORRECT" ||
    bad "wrong PIN error lacks CKR_PIN_INCORRECT: $(cat err.txt)"
expect_fail "a missing token label is reported" "node-9" \
    "$admin" hsm status --node-dir "$work/n1" --token node-9 --pin-file pin
expect_fail "a missing module is reported" "module" \
    "$admin" hsm status $(hsm 1) --module /nonexistent/libpkcs11.so

expect_ok "realm create on node-1" "$admin" realm create $(hsm 1) --out realm
[ -f realm/realm.bin ] && [ -f realm/opaque-secrets.sealed ] && ok "realm files written" ||
    bad "realm files missing"
expect_fail "realm create refuses a token that holds a realm" "already holds realm" \
    "$admin" realm create $(hsm 1) --out realm
expect_fail "node-2 is not enrolled yet" "not yet enrolled" \
    "$admin" hsm check $(hsm 2) --realm realm

expect_ok "enrol request on node-2" "$admin" enrol request $(hsm 2) --out req2
fp=$(sed -n 's/^fingerprint: *//p' out.txt)
[ ${#fp} -eq 79 ] && ok "fingerprint printed in groups of 4" || bad "fingerprint '$fp'"
expect_ok "enrol request on node-3" "$admin" enrol request $(hsm 3) --out req3

wrong_fp="0000${fp:4}"
expect_fail "approval with the wrong fingerprint is refused" "not approved" \
    "$admin" enrol approve $(hsm 1) --so-pin-file sopin --request req2 \
    --fingerprint "$wrong_fp" --realm realm --out blob-wrong
[ ! -e blob-wrong ] && ok "no blob written for a refused approval" || bad "blob written"
expect_fail "approval with the wrong SO PIN is refused" "PIN" \
    "$admin" enrol approve $(hsm 1) --so-pin-file wrong-pin --request req2 \
    --fingerprint "$fp" --realm realm --out blob-wrong
expect_ok "approval of node-2's request" "$admin" enrol approve $(hsm 1) --so-pin-file sopin \
    --request req2 --fingerprint "$fp" --realm realm --out blob2

# The blob holds no key in the clear and is useless to a third token.
expect_fail "node-3 cannot use node-2's blob" "not approved" \
    "$admin" enrol accept $(hsm 3) --blob blob2 --realm realm
expect_fail "node-3 is still not enrolled" "not yet enrolled" \
    "$admin" hsm check $(hsm 3) --realm realm

# A tampered blob is refused in every region and leaves node-2 unenrolled.
size=$(stat -c %s blob2)
for off in 8 40 120 200 300 $((size - 40)) $((size - 1)); do
    cp blob2 tampered
    byte=$(od -An -tu1 -j "$off" -N1 tampered | tr -d ' ')
    printf "$(printf '\\%03o' $(((byte + 1) % 256)))" |
        dd of=tampered bs=1 seek="$off" conv=notrunc status=none
    expect_fail "a blob with byte $off changed is refused" "bkv-admin" \
        "$admin" enrol accept $(hsm 2) --blob tampered --realm realm
done
expect_fail "node-2 is still not enrolled after the tampered blobs" "not yet enrolled" \
    "$admin" hsm check $(hsm 2) --realm realm

expect_ok "node-2 accepts its blob" "$admin" enrol accept $(hsm 2) --blob blob2 --realm realm
expect_fail "the blob cannot be replayed" "bkv-admin" \
    "$admin" enrol accept $(hsm 2) --blob blob2 --realm realm

# After enrolment node-2 does what node-1 does: same MAC, HPKE, OPAQUE secrets.
expect_ok "hsm check on node-1" "$admin" hsm check $(hsm 1) --realm realm --account alice
mac1=$(sed -n 's/^account MAC: *//p' out.txt)
expect_ok "hsm check on node-2" "$admin" hsm check $(hsm 2) --realm realm --account alice
mac2=$(sed -n 's/^account MAC: *//p' out.txt)
grep -q 'HPKE decapsulation in HSM: ok' out.txt && ok "node-2 decapsulates to the realm key" ||
    bad "node-2 HPKE"
grep -q 'OPAQUE secrets unsealed:   yes' out.txt && ok "node-2 unseals node-1's secrets" ||
    bad "node-2 unseal"
[ -n "$mac1" ] && [ "$mac1" = "$mac2" ] && ok "node-1 and node-2 compute the same account MAC" ||
    bad "account MACs differ: '$mac1' vs '$mac2'"

# Nothing secret on disk in the clear: the realm files hold no PIN and the
# sealed secrets are not the OPAQUE public key's neighbours in plaintext.
if grep -qF -- "so-secret" realm/* blob2 req2; then bad "a PIN appears in an output file"; else
    ok "no PIN in any output file"
fi

echo "enrolment: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
