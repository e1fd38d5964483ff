#!/usr/bin/env bash
# BKV's main job, on one fresh Debian bookworm machine (as root):
#   1. install the dependencies and build;
#   2. provision a SoftHSM2 token per node, create the realm on node 1 and
#      enrol the other nodes by the HSM ceremony;
#   3. start 5 nodes in 3 simulated data centers (2+2+1) on loopback, with a
#      router in front;
#   4. show the product: a backup key generated, a backup encrypted, the key
#      registered under a password, a wrong password counted, the key
#      recovered and the backup decrypted; then a second account's key
#      destroyed by too many wrong guesses;
#   5. stop the cluster (or, with --keep, leave it running and say how to stop it).
#
#   scripts/demo.sh [--keep] [--dir DIR] [--base-port 17100]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

keep=0 dir= base=17100
while [ $# -gt 0 ]; do
    case $1 in
    --keep) keep=1; shift ;;
    --dir) dir=$2; shift 2 ;;
    --base-port) base=$2; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

say "1. dependencies and build"
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" -- --no-print-directory >/dev/null
echo "built: build/node/bkv-node, build/node/bkv-router, build/node/bkv-admin, build/client/bkv"

[ -n "$dir" ] || dir=$(mktemp -d /tmp/bkv-demo.XXXXXX)
cluster() { bash scripts/cluster.sh "$@" --dir "$dir"; }
stop_cluster() {
    if [ "$keep" -eq 0 ]; then
        say "6. stopping the cluster"
        cluster down
        echo "everything the demo made is in $dir (remove it with: rm -rf $dir)"
    fi
}
trap stop_cluster EXIT

say "2-3. tokens, realm, enrolment ceremony, 5 nodes in 3 data centers, a router"
cluster up --nodes 5 --limit 5 --base-port "$base"
. "$dir/cluster.env"
bkv=build/client/bkv
conn=(--router "$BKV_ROUTER" --fingerprint "$BKV_FINGERPRINT")
for i in $(seq 1 "$BKV_NODES"); do
    curl -fsS "http://127.0.0.1:$((BKV_BASE + 200 + i))/v1/status" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print("  node %d  %-5s %-9s term %d  applied %d" % (d["id"], d["dc"], d["role"], d["term"], d["applied_index"]))'
done

work=$dir/demo
mkdir -p "$work"
chmod 700 "$work"
cluster token --account alice >"$work/alice.token"
cluster token --account bob >"$work/bob.token"
printf 'correct horse battery staple\n' >"$work/alice.pw"
printf 'tr0ub4dor&3\n' >"$work/alice.wrong"
printf 'bobs real password\n' >"$work/bob.pw"
printf 'guess\n' >"$work/bob.wrong"
chmod 600 "$work"/*.pw "$work"/*.wrong "$work"/*.token

say "4a. alice generates a backup key (write it down: 64 key digits + 4 check digits)"
show "bkv keygen --out alice.key"
$bkv keygen --out "$work/alice.key"
cat "$work/alice.key"

say "4b. she encrypts a sample backup with it"
head -c $((8 * 1024 * 1024)) /dev/urandom >"$work/chats.db"
show "bkv encrypt --key-file alice.key --in chats.db --out chats.db.bkv"
$bkv encrypt --key-file "$work/alice.key" --in "$work/chats.db" --out "$work/chats.db.bkv"
ls -l "$work/chats.db" "$work/chats.db.bkv" | awk '{print "  " $5 "  " $9}'

say "4c. she registers the key with the vault under a password"
show "bkv register --account alice --token-file alice.token --key-file alice.key --password-file alice.pw"
$bkv register "${conn[@]}" --account alice --token-file "$work/alice.token" \
    --key-file "$work/alice.key" --password-file "$work/alice.pw"

say "4d. a wrong password is counted"
show "bkv recover --account alice ... --password-file alice.wrong"
rc=0
$bkv recover "${conn[@]}" --account alice --token-file "$work/alice.token" \
    --password-file "$work/alice.wrong" --out "$work/alice.recovered" || rc=$?
echo "  (exit status $rc: wrong password)"

say "4e. the right password recovers the key"
show "bkv recover --account alice ... --password-file alice.pw --out alice.recovered"
$bkv recover "${conn[@]}" --account alice --token-file "$work/alice.token" \
    --password-file "$work/alice.pw" --out "$work/alice.recovered"
cat "$work/alice.recovered"

say "4f. the recovered key decrypts the backup"
show "bkv decrypt --key-file alice.recovered --in chats.db.bkv --out chats.restored"
$bkv decrypt --key-file "$work/alice.recovered" --in "$work/chats.db.bkv" --out "$work/chats.restored"
if cmp -s "$work/chats.db" "$work/chats.restored"; then
    echo "  chats.restored is identical to chats.db ($(stat -c %s "$work/chats.db") bytes)"
else
    echo "demo: the restored backup differs from the original" >&2
    exit 1
fi

say "4g. bob registers, then someone guesses wrong until the vault destroys his key"
$bkv keygen --out "$work/bob.key" >/dev/null
$bkv register "${conn[@]}" --account bob --token-file "$work/bob.token" \
    --key-file "$work/bob.key" --password-file "$work/bob.pw"
for i in $(seq 1 "$BKV_LIMIT"); do
    rc=0
    $bkv recover "${conn[@]}" --account bob --token-file "$work/bob.token" \
        --password-file "$work/bob.wrong" --out "$work/bob.recovered" || rc=$?
    [ "$rc" -eq 3 ] && break
done
echo "  now even the right password cannot bring it back:"
rc=0
$bkv recover "${conn[@]}" --account bob --token-file "$work/bob.token" \
    --password-file "$work/bob.pw" --out "$work/bob.recovered" || rc=$?
echo "  (exit status $rc)"
[ "$rc" -eq 3 ] || { echo "demo: bob's key should be destroyed" >&2; exit 1; }

say "every node holds the same state (records, tombstones, state hash)"
same_state() {
    local i n
    n=$(for i in $(seq 1 "$BKV_NODES"); do
        curl -fsS "http://127.0.0.1:$((BKV_BASE + 200 + i))/v1/status" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["store"]["state_hash"])'
    done | sort -u | wc -l)
    [ "$n" -eq 1 ]
}
end=$((SECONDS + 15))
until same_state; do
    [ "$SECONDS" -lt "$end" ] || { echo "demo: the nodes did not converge within 15 s" >&2; exit 1; }
    sleep 0.2
done
for i in $(seq 1 "$BKV_NODES"); do
    curl -fsS "http://127.0.0.1:$((BKV_BASE + 200 + i))/v1/status" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["store"]; print("  node %d  %-9s records %d  tombstones %d  state %s..." % (d["id"], d["role"], s["records"], s["tombstones"], s["state_hash"][:16]))'
done

if [ "$keep" -eq 1 ]; then
    say "the cluster keeps running"
    echo "  status:  curl http://127.0.0.1:$((BKV_BASE + 201))/v1/status"
    echo "  stop it: bash scripts/cluster.sh down --dir $dir"
fi
