#!/usr/bin/env bash
# The bkv CLI as a person and a script use it, without a cluster: --help of
# the program and of every subcommand, usage errors (exit 1), passwords never
# taken from argv, key files created 0600 and never overwritten, files other
# users can read refused, the key config pin checked before anything is sent
# (exit 6), the Identity KSF refused, an unreachable router (exit 5), and an
# encrypt/decrypt round trip where a failed decrypt leaves no output file.
# The full register/recover path against real nodes is in the end-to-end tests.
#
#   bkv_cli.sh PATH-TO-bkv
set -euo pipefail

bkv=$1
work=$(mktemp -d /tmp/bkv-cli.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
umask 077

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
# expect CODE "description" "text stderr must contain" command...
expect() {
    local code=$1 what=$2 want=$3 got=0
    shift 3
    "$@" >out.txt 2>err.txt </dev/null || got=$?
    if [ "$got" -ne "$code" ]; then
        bad "$what: exit $got, want $code: $(cat err.txt)"
    elif [ -n "$want" ] && ! grep -qF -- "$want" err.txt out.txt; then
        bad "$what: output does not mention '$want': $(cat err.txt)"
    else
        ok "$what"
    fi
}
# The same with standard input from a file.
expect_in() {
    local input=$1 code=$2 what=$3 want=$4 got=0
    shift 4
    "$@" >out.txt 2>err.txt <"$input" || got=$?
    if [ "$got" -ne "$code" ]; then
        bad "$what: exit $got, want $code: $(cat err.txt)"
    elif [ -n "$want" ] && ! grep -qF -- "$want" err.txt out.txt; then
        bad "$what: output does not mention '$want': $(cat err.txt)"
    else
        ok "$what"
    fi
}
hex_to_file() { printf "$(printf '%s' "$1" | tr -d ' \n' | sed 's/../\\x&/g')" >"$2"; }

# A realm key config (hex): "BKVK" v1, realm id, Argon2id t=3 m=64 MiB p=4, and an
# RFC 9458 key config with key id 1, DHKEM(P-256) and the generator point as
# public key, offering HKDF-SHA256 with AES-128-GCM and AES-256-GCM.
G=046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5
OHTTP="01 0010 $G 0008 0001 0001 0001 0002"
printf '424b564b 01000000 00112233445566778899aabbccddeeff 01000000 00000003 00010000 00000004 004e %s\n' \
    "$OHTTP" >realm.kc
printf '424b564b 01000000 00112233445566778899aabbccddeeff 00000000 00000000 00000000 00000000 004e %s\n' \
    "$OHTTP" >identity.kc
hex_to_file "$(cat realm.kc)" realm.bin
fp=$(sha256sum realm.bin | cut -d' ' -f1)
other_fp=$(printf 'x' | sha256sum | cut -d' ' -f1)
printf 'bkv1.AAAAAAAAAAA.tag\n' >token
printf 'a password\n' >pw
chmod 600 token pw
# A router address where nothing listens.
dead=127.0.0.1:1
vault() { echo --router "$dead" --account alice@example.org --token-file token; }

# --- help -------------------------------------------------------------------
expect 0 "bkv --help" "Commands:" "$bkv" --help
for w in keygen encrypt decrypt register recover delete "Exit codes" "2  wrong password" \
    "3  the key was destroyed" "5  the router cannot be reached" "6  the router's key config"; do
    grep -qF -- "$w" out.txt && ok "bkv --help mentions '$w'" || bad "bkv --help lacks '$w'"
done
expect 1 "bkv without a command is a usage error" "usage: bkv COMMAND" "$bkv"
expect 1 "unknown command" 'unknown command "frobnicate"' "$bkv" frobnicate
for sub in keygen encrypt decrypt register recover delete; do
    expect 0 "bkv $sub --help" "usage: bkv $sub" "$bkv" "$sub" --help
    grep -qF "Exit codes" out.txt && ok "bkv $sub --help lists exit codes" ||
        bad "bkv $sub --help lacks exit codes"
    expect 1 "bkv $sub rejects an unknown option" "unknown option --frob" "$bkv" "$sub" --frob
done
for sub in register recover; do
    "$bkv" "$sub" --help >out.txt
    grep -qF -- "--password-file" out.txt && grep -qF -- "--password-stdin" out.txt &&
        grep -qF "never accepted on the command line" out.txt &&
        ok "bkv $sub --help explains where passwords come from" ||
        bad "bkv $sub --help does not explain passwords"
done

# --- passwords never from argv ----------------------------------------------
for form in "--password hunter2" "--password=hunter2" "-p hunter2" "--pass hunter2"; do
    # shellcheck disable=SC2086
    expect 1 "recover refuses $form" "never taken from the command line" \
        "$bkv" recover $(vault) --fingerprint "$fp" $form
    # shellcheck disable=SC2086
    expect 1 "register refuses $form" "never taken from the command line" \
        "$bkv" register $(vault) --fingerprint "$fp" --key-file k $form
done
expect 1 "--password-file and --password-stdin together" "not both" \
    "$bkv" recover $(vault) --fingerprint "$fp" --password-file pw --password-stdin
expect 1 "no terminal and no password option" "no terminal to ask for the password" \
    setsid -w "$bkv" recover $(vault) --fingerprint "$fp"
chmod 644 pw
expect 1 "a password file others can read is refused" "chmod 600 pw" \
    "$bkv" recover $(vault) --fingerprint "$fp" --password-file pw
chmod 600 pw
: >empty
expect 1 "an empty password file is refused" "is empty" \
    "$bkv" recover $(vault) --fingerprint "$fp" --password-file empty
expect_in empty 1 "no password on standard input" "no password in standard input" \
    "$bkv" recover $(vault) --fingerprint "$fp" --password-stdin

# --- usage errors of the vault commands ------------------------------------
expect 1 "recover without --router" "--router, --account and --token-file are needed" \
    "$bkv" recover --account a --token-file token --fingerprint "$fp"
expect 1 "recover without a pin" "--keyconfig FILE or --fingerprint HEX" \
    "$bkv" recover $(vault)
expect 1 "a short fingerprint" "64 hex digits" "$bkv" delete $(vault) --fingerprint abcd
expect 1 "a router address without a port" "not host:port" \
    "$bkv" delete --router localhost --account a --token-file token --fingerprint "$fp"
expect 1 "a bad account id" "account id" \
    "$bkv" delete --router "$dead" --account "a b" --token-file token --fingerprint "$fp"
expect 1 "a missing token file" "cannot open token file nope" \
    "$bkv" delete --router "$dead" --account a --token-file nope --fingerprint "$fp"
chmod 640 token
expect 1 "a token file others can read is refused" "chmod 600 token" \
    "$bkv" delete $(vault) --fingerprint "$fp"
chmod 600 token
expect 1 "--timeout must be a number" "--timeout takes a number" \
    "$bkv" delete $(vault) --fingerprint "$fp" --timeout soon
expect 1 "register without --key-file" "--key-file is needed" \
    "$bkv" register $(vault) --fingerprint "$fp" --password-file pw
expect 1 "an option of another command" "does not apply here" \
    "$bkv" delete $(vault) --fingerprint "$fp" --key-file k
expect 1 "a stray argument" 'unexpected argument "extra"' \
    "$bkv" delete $(vault) --fingerprint "$fp" extra
echo "not hex" >bad.kc
expect 1 "a key config file that is not one" "is not a BKV key config" \
    "$bkv" delete $(vault) --keyconfig bad.kc

# --- the pin and the KSF ------------------------------------------------------
expect 6 "key config and fingerprint disagree (exit 6)" "does not match the pinned fingerprint" \
    "$bkv" delete $(vault) --keyconfig realm.kc --fingerprint "$other_fp"
expect 8 "an Identity-KSF key config is refused" "Identity KSF" \
    "$bkv" delete $(vault) --keyconfig identity.kc

# --- keygen ---------------------------------------------------------------------
expect 0 "keygen prints a key" "" "$bkv" keygen
grep -Eq '^([0-9a-f]{4} ){16} ?[0-9a-f]{4}$' out.txt && ok "the key is 17 groups of 4 hex digits" ||
    bad "keygen printed: $(cat out.txt)"
expect 0 "keygen --out" "wrote a new backup key to k" "$bkv" keygen --out k
[ "$(stat -c %a k)" = 600 ] && ok "the key file is mode 0600" || bad "key file mode $(stat -c %a k)"
cp k k.before
expect 1 "keygen never overwrites a key file" "already exists" "$bkv" keygen --out k
cmp -s k k.before && ok "the existing key file is unchanged" || bad "keygen changed k"

# --- unreachable router (exit 5), with each pin and each password source -------
expect 5 "register, router unreachable, pinned by fingerprint" "cannot reach the router at $dead" \
    "$bkv" register $(vault) --fingerprint "$fp" --key-file k --password-file pw
expect 5 "register, router unreachable, pinned by key config" "cannot reach the router at $dead" \
    "$bkv" register $(vault) --keyconfig realm.kc --key-file k --password-file pw
expect_in pw 5 "recover, raw key config bytes, password on stdin" "connection refused" \
    "$bkv" recover $(vault) --keyconfig realm.bin --password-stdin
expect_in pw 5 "recover, password on stdin" "cannot reach the router" \
    "$bkv" recover $(vault) --keyconfig realm.kc --fingerprint "$fp" --password-stdin
expect 5 "delete, router unreachable" "cannot reach the router" \
    "$bkv" delete $(vault) --fingerprint "$fp"
[ ! -e rec.key ] || rm -f rec.key
expect 5 "recover --out, router unreachable" "cannot reach the router" \
    "$bkv" recover $(vault) --fingerprint "$fp" --password-file pw --out rec.key
[ ! -e rec.key ] && ok "a failed recover leaves no --out file" || bad "rec.key was left behind"
expect 1 "recover never overwrites --out" "already exists" \
    "$bkv" recover $(vault) --fingerprint "$fp" --password-file pw --out k

# --- key files ---------------------------------------------------------------------
chmod 644 k
expect 1 "a key file others can read is refused" "chmod 600 k" \
    "$bkv" register $(vault) --fingerprint "$fp" --key-file k --password-file pw
chmod 600 k
sed 's/^\(.\)/\1x/' k >typo.k
chmod 600 typo.k
expect 1 "a key file with a non-hex character" "does not hold a BKV key" \
    "$bkv" encrypt --key-file typo.k --in k --out x.enc
# Change one digit of the key: the check digits catch it.
first=$(cut -c1 k)
if [ "$first" = 0 ]; then repl=1; else repl=0; fi
sed "s/^./$repl/" k >typo2.k
chmod 600 typo2.k
expect 1 "a key file with a typo" "typo" "$bkv" encrypt --key-file typo2.k --in k --out x.enc

# --- encrypt / decrypt --------------------------------------------------------------
head -c 300000 /dev/urandom >plain
expect 1 "encrypt without --out" "--key-file, --in and --out are all needed" \
    "$bkv" encrypt --key-file k --in plain
expect 0 "encrypt" "" "$bkv" encrypt --key-file k --in plain --out plain.bkv
expect 0 "decrypt" "" "$bkv" decrypt --key-file k --in plain.bkv --out plain.out
cmp -s plain plain.out && ok "the round trip gives the original" || bad "round trip differs"
"$bkv" keygen --out k2 >/dev/null
expect 8 "decrypt with another key fails" "" \
    "$bkv" decrypt --key-file k2 --in plain.bkv --out wrong.out
[ ! -e wrong.out ] && ok "a failed decrypt leaves no --out file" || bad "wrong.out exists"
ls ./*.bkv-tmp-* >/dev/null 2>&1 && bad "a temporary file was left behind" ||
    ok "no temporary file left behind"
head -c 150000 plain.bkv >cut.bkv
expect 8 "decrypt of a truncated backup fails" "" \
    "$bkv" decrypt --key-file k --in cut.bkv --out cut.out
[ ! -e cut.out ] && ok "a truncated backup leaves no --out file" || bad "cut.out exists"
expect 1 "decrypt of a missing file" "cannot open nope" \
    "$bkv" decrypt --key-file k --in nope --out nope.out

echo "bkv CLI: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
