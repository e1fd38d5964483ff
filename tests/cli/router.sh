#!/usr/bin/env bash
# bkv-router as an operator runs it, as a real process on loopback, with keys
# and tokens from bkv-admin and a key config built from a real realm (one
# SoftHSM2 token). No vault node runs here (the happy path is tested end to
# end with real nodes elsewhere): the router's --node addresses have nothing
# listening, so every valid request must end in 503 + Retry-After after the
# deadline. Checks the answers a client gets (401 for missing, malformed,
# bad and expired tokens, 404, 405, 413, broken HTTP 400, 429), the key config
# it serves, that nothing secret reaches its log, that it links no HSM code,
# and a clean SIGTERM. Every wait is for a condition with a deadline.
#
#   router.sh PATH-TO-bkv-router PATH-TO-bkv-admin
set -euo pipefail

router=$1
admin=$2
work=$(mktemp -d /tmp/bkv-router.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${BKV_TEST_KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
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
have_curl=0
command -v curl >/dev/null && [ -z "${BKV_TEST_NO_CURL:-}" ] && have_curl=1

# A loopback port with nothing listening (bound, then released).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# http METHOD PATH [AUTH] [BODY-FILE]: one request; sets code, hdrs (file), body (file).
# With curl when present, else a python3 socket client; the same checks either way.
http() {
    local method=$1 path=$2 auth=${3:-} bodyf=${4:-}
    rm -f hdrs body
    if [ "$have_curl" -eq 1 ]; then
        local args=(-s -S -m 20 -X "$method" -D hdrs -o body -w '%{http_code}' -H 'Expect:')
        [ -n "$auth" ] && args+=(-H "Authorization: $auth")
        [ -n "$bodyf" ] && args+=(-H 'Content-Type: message/bkv-request' --data-binary "@$bodyf")
        code=$(curl "${args[@]}" "http://127.0.0.1:$port$path" || true)
    else
        code=$(python3 - "$port" "$method" "$path" "$auth" "$bodyf" <<'EOF'
import socket, sys
port, method, path, auth, bodyf = sys.argv[1:6]
body = open(bodyf, 'rb').read() if bodyf else b''
req = f'{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n'
if auth: req += f'Authorization: {auth}\r\n'
req += f'Content-Length: {len(body)}\r\n\r\n'
s = socket.create_connection(('127.0.0.1', int(port)), timeout=20)
s.sendall(req.encode() + body)
data = b''
while True:
    try: c = s.recv(65536)
    except ConnectionResetError: break
    if not c: break
    data += c
head, _, rest = data.partition(b'\r\n\r\n')
open('hdrs', 'wb').write(head + b'\r\n')
open('body', 'wb').write(rest)
print(head.split(b' ')[1].decode() if head else '000')
EOF
)
    fi
}
# expect STATUS "what" [text the body must contain] -- after http
expect() {
    local want=$1 what=$2 text=${3:-}
    if [ "$code" != "$want" ]; then
        bad "$what: status $code, want $want ($(head -c 200 body 2>/dev/null))"
    elif [ -n "$text" ] && ! grep -qF -- "$text" body; then
        bad "$what: body lacks '$text': $(head -c 200 body)"
    else
        ok "$what"
    fi
}
header() { tr -d '\r' <hdrs | sed -n "s/^$1: *//Ip" | head -1; }

# --- keys, tokens, key config ---------------------------------------------------
"$admin" router keygen --out-dir keys >out.txt 2>err.txt && ok "router keygen" ||
    bad "router keygen: $(cat err.txt)"
[ "$(stat -c %a keys/router.key)" = 600 ] && [ "$(stat -c %a keys/router-proof.key)" = 600 ] &&
    ok "both key files are mode 0600" || bad "key file modes: $(stat -c '%n %a' keys/*)"
"$admin" router keygen --out-dir other >/dev/null 2>&1 # a second, unrelated router
token=$("$admin" token issue --key keys/router.key --account alice --ttl 1h 2>/dev/null)
token_rl=$("$admin" token issue --key keys/router.key --account ratelimited --ttl 1h 2>/dev/null)
short=$("$admin" token issue --key keys/router.key --account shortlived --ttl 2s 2>/dev/null)
foreign=$("$admin" token issue --key other/router.key --account alice --ttl 1h 2>/dev/null)
case "$token" in bkv1.*.*) ok "token issue prints a bkv1 token" ;; *) bad "token: '$token'" ;; esac
# Change the tag's second-to-last character (the last one has 2 spare bits).
tampered=${token%??}
[ "${token: -2:1}" = A ] && tampered+=B || tampered+=A
tampered+=${token: -1}

printf '1234\n' >pin
printf 'so-secret\n' >sopin
chmod 600 pin sopin
if "$admin" token init --node-dir "$work/n1" --token node-1 --pin-file pin --so-pin-file sopin \
    >/dev/null 2>err.txt &&
    "$admin" realm create --node-dir "$work/n1" --token node-1 --pin-file pin --out realm \
        >/dev/null 2>>err.txt &&
    "$admin" realm keyconfig --realm-dir realm --out keyconfig.bin >kc.txt 2>>err.txt; then
    ok "realm keyconfig from a real realm"
else
    bad "cannot make a key config: $(cat err.txt)"
fi
fp=$(sed -n 's/^fingerprint: *//p' kc.txt)
[ "$fp" = "$(sha256sum keyconfig.bin | cut -d' ' -f1)" ] &&
    ok "the printed fingerprint is the SHA-256 of the key config" ||
    bad "fingerprint '$fp' is not the file's SHA-256"

# --- start-up refusals ------------------------------------------------------------
"$router" --help >out.txt && grep -q -- '--deadline-ms' out.txt && ok "--help documents the flags" ||
    bad "--help"
if "$router" --key keys/router.key >/dev/null 2>err.txt; then bad "started without --node"; else
    [ $? -eq 2 ] && grep -q -- '--node' err.txt && ok "no --node is a usage error" ||
        bad "no --node: $(cat err.txt)"
fi
cp keys/router.key loose.key
chmod 644 loose.key
if "$router" --node 127.0.0.1:1 --key loose.key >/dev/null 2>err.txt; then
    bad "started with a key others can read"
else
    grep -q 'chmod 600' err.txt && ok "a router key readable by others is refused" ||
        bad "loose key: $(cat err.txt)"
fi
if "$router" --node 127.0.0.1:1 --key keys/router-proof.key >/dev/null 2>err.txt; then
    bad "started with the proof key only"
else
    grep -q 'router.key' err.txt && ok "the proof key alone is refused, naming router.key" ||
        bad "proof key as router key: $(cat err.txt)"
fi
head -c 50 /dev/urandom >junk.bin
if "$router" --node 127.0.0.1:1 --key keys/router.key --keyconfig junk.bin >/dev/null 2>err.txt
then bad "started with a junk key config"; else
    grep -q 'not a realm key config' err.txt && ok "a junk key config is refused" ||
        bad "junk key config: $(cat err.txt)"
fi

# --- the running router -----------------------------------------------------------
n1=$(free_port)
n2=$(free_port)
"$router" --listen 127.0.0.1:0 --node "127.0.0.1:$n1" --node "127.0.0.1:$n2" \
    --key keys/router.key --keyconfig keyconfig.bin --deadline-ms 700 --rate 1 --burst 2 \
    --max-body 1024 --log-level debug 2>router.log &
rpid=$!
pids+=("$rpid")
if wait_until 20 grep -q 'listening on' router.log; then
    port=$(sed -n 's/.*listening on .* (port \([0-9]*\)).*/\1/p' router.log | head -1)
    ok "router started on port $port"
else
    bad "router did not start: $(cat router.log)"
    echo "router: $pass passed, $fail failed"
    exit 1
fi
grep -q "fingerprint $fp" router.log && ok "the router logs the key config fingerprint" ||
    bad "no fingerprint in the log"

printf 'SECRET-ENVELOPE-%.0s' {1..20} >env.bin # 340 bytes that must never be logged
head -c 2000 /dev/zero | tr '\0' 'x' >big.bin

http POST /v1/vault "" env.bin
expect 401 "no token: 401" "missing token"
[ "$(header WWW-Authenticate | cut -c1-6)" = Bearer ] && ok "401 carries WWW-Authenticate: Bearer" ||
    bad "no WWW-Authenticate"
http POST /v1/vault "Bearer garbage" env.bin
expect 401 "malformed token: 401" "malformed token"
http POST /v1/vault "Bearer $tampered" env.bin
expect 401 "tampered token: 401" "bad token"
http POST /v1/vault "Bearer $foreign" env.bin
expect 401 "another router's token: 401" "bad token"
http POST /v1/vault "Basic YWxpY2U6cGFzcw==" env.bin
expect 401 "Basic auth: 401" "Bearer"
expired_now() {
    http POST /v1/vault "Bearer $short" env.bin
    [ "$code" = 401 ] && grep -q 'expired token' body
}
if wait_until 10 expired_now; then ok "an expired token: 401 expired"; else
    bad "the 2 s token never turned expired: $code $(cat body)"
fi
http POST /v1/vault "Bearer $token" big.bin
expect 413 "a body above --max-body: 413"
http POST /nope "Bearer $token" env.bin
expect 404 "unknown path: 404"
http GET /v1/vault "Bearer $token"
expect 405 "GET /v1/vault: 405"
http GET /v1/keyconfig
expect 200 "GET /v1/keyconfig: 200"
cmp -s body keyconfig.bin && ok "the served key config is the file, byte for byte" ||
    bad "served key config differs"
[ "$(header Content-Type)" = application/bkv-keyconfig ] && ok "key config content type" ||
    bad "key config content type: $(header Content-Type)"
http GET /livez
expect 200 "GET /livez: 200" ok

garbage=$(python3 - "$port" <<'EOF'
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)
s.sendall(b'GARBAGE / NOT-HTTP\r\n\r\n')
print(s.recv(4096).split(b'\r\n')[0].decode())
EOF
)
case "$garbage" in "HTTP/1.1 400 "*) ok "broken HTTP: 400" ;; *) bad "broken HTTP: '$garbage'" ;; esac

# No node answers: 503 + Retry-After, and only after the deadline (700 ms).
t0=$(date +%s%N)
http POST /v1/vault "Bearer $token" env.bin
t1=$(date +%s%N)
expect 503 "no node up: 503" "no vault leader"
[ -n "$(header Retry-After)" ] && ok "503 carries Retry-After: $(header Retry-After)" ||
    bad "503 without Retry-After"
ms=$(((t1 - t0) / 1000000))
[ "$ms" -ge 650 ] && [ "$ms" -lt 10000 ] && ok "503 came after the deadline (${ms} ms)" ||
    bad "503 after ${ms} ms, deadline 700"

# Per-account rate: burst 2, then 429 with Retry-After; another account is not affected.
http POST /v1/vault "Bearer $token_rl" env.bin
http POST /v1/vault "Bearer $token_rl" env.bin
http POST /v1/vault "Bearer $token_rl" env.bin
expect 429 "third request of a burst of 2: 429"
ra=$(header Retry-After)
[ -n "$ra" ] && [ "$ra" -ge 1 ] && ok "429 carries Retry-After: $ra" || bad "429 Retry-After '$ra'"

# The router process links no HSM code and its log holds no token and no envelope byte.
if nm "$router" 2>/dev/null | grep -qiE 'bkv_hsm_|C_GetFunctionList|softhsm'; then
    bad "bkv-router contains HSM code"
else
    ok "bkv-router links no HSM code"
fi
ldd "$router" | grep -qiE 'softhsm|p11' && bad "bkv-router loads a PKCS#11 library" ||
    ok "bkv-router loads no PKCS#11 library"
leak=0
for s in "$token" "$token_rl" "$tampered" "$foreign" "$short" SECRET-ENVELOPE garbage \
    "${token:20:20}"; do
    grep -qF -- "$s" router.log && { leak=1; bad "the log contains '${s:0:24}...'"; }
done
[ "$leak" -eq 0 ] && ok "no token and no request byte in the log"
grep -q 'status=413 (refused by the HTTP layer)' router.log &&
    grep -q 'status=400 (refused by the HTTP layer)' router.log &&
    ok "answers of the HTTP layer (413, 400) are logged too" || bad "no log line for 413/400"
grep -q 'account=alice status=503 node=127.0.0.1' router.log &&
    ok "one log line per request with account, status and node" || bad "no request log line"

# SIGTERM: a clean stop, exit 0.
kill -TERM "$rpid"
if wait_until 10 dead "$rpid"; then
    rc=0
    wait "$rpid" || rc=$?
    [ "$rc" -eq 0 ] && grep -q 'stopped' router.log && ok "SIGTERM: clean exit 0" ||
        bad "SIGTERM: exit $rc, log: $(tail -3 router.log)"
else
    bad "router did not stop on SIGTERM"
fi

echo "router: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
