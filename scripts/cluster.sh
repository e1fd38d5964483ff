#!/usr/bin/env bash
# A local BKV cluster on loopback, in simulated data centers: one SoftHSM2
# token per node, the realm created on node 1 and enrolled into the others by
# the HSM ceremony, N bkv-node processes and one bkv-router.
#
#   scripts/cluster.sh up   --dir DIR [--nodes 5] [--limit 10] [--base-port 17100]
#                           [--ksf-t 3 --ksf-m-kib 65536 --ksf-p 4] [--build build]
#                           [--snapshot-threshold N] [--log-level info]
#                           [--router-arg ARG]... [--capture]
#   scripts/cluster.sh down --dir DIR          stop every process it started (by PID)
#   scripts/cluster.sh kill --dir DIR --node N [--signal KILL]
#   scripts/cluster.sh start --dir DIR --node N   (re)start one node
#   scripts/cluster.sh leader --dir DIR        print the leader's id (waits up to 30 s)
#   scripts/cluster.sh token --dir DIR --account A [--ttl 1h]
#   scripts/cluster.sh add --dir DIR --node K  provision node K's token, enrol it by the
#                           ceremony, write its configuration and start it (no bootstrap):
#                           then `bkv-admin members add` / `promote` make it a member
#
# up --spares N gives the router the gateway addresses of N nodes beyond --nodes too,
# for nodes added later. Changing admin operations use DIR/secrets/admin.token.
#
# Layout (5 nodes): dc-a = nodes 1, 2; dc-b = nodes 3, 4; dc-c = node 5, so
# the loss of any one data center leaves a quorum. With 3 nodes: one per DC.
# Ports from --base-port P: raft P+i, gateway P+100+i, admin P+200+i,
# snapshot P+300+i, router P+400.
# --capture puts a recording TCP proxy (tests/e2e/capture_proxy.py) in front
# of the router (on P+450, which becomes the router address clients get) and
# in front of each node's gateway (on P+500+i, the addresses the router is
# given); the bytes go to DIR/capture/. A follower's 421 names the leader's
# own gateway, which the router does not know, so it asks its next node.
# --router-arg passes one more argument to bkv-router.
# DIR/cluster.env records what a client needs (router, key config, fingerprint).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
[ -n "$cmd" ] && shift
case $cmd in -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;; esac
dir='' nodes=5 limit=10 base=17100 build="$here/build" node='' sig=KILL account='' ttl=1h
ksf_t=3 ksf_m=65536 ksf_p=4 capture=0 snap_threshold='' log_level=
router_args=() build_given=0 spares=0
while [ $# -gt 0 ]; do
    case $1 in
    --dir) dir=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --base-port) base=$2; shift 2 ;;
    --build) build=$2; build_given=1; shift 2 ;;
    --node) node=$2; shift 2 ;;
    --signal) sig=$2; shift 2 ;;
    --account) account=$2; shift 2 ;;
    --ttl) ttl=$2; shift 2 ;;
    --ksf-t) ksf_t=$2; shift 2 ;;
    --ksf-m-kib) ksf_m=$2; shift 2 ;;
    --ksf-p) ksf_p=$2; shift 2 ;;
    --snapshot-threshold) snap_threshold=$2; shift 2 ;;
    --log-level) log_level=$2; shift 2 ;;
    --router-arg) router_args+=("$2"); shift 2 ;;
    --capture) capture=1; shift ;;
    --spares) spares=$2; shift 2 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "cluster: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$dir" ] || { echo "cluster: --dir DIR is required" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ -f "$dir/cluster.env" ] && . "$dir/cluster.env"
# Later commands use the binaries the cluster was brought up with.
[ "$build_given" = 0 ] && [ -n "${BKV_BUILD:-}" ] && build=$BKV_BUILD
admin_bin="$build/node/bkv-admin"
node_bin="$build/node/bkv-node"
router_bin="$build/node/bkv-router"

log() { echo "cluster: $*"; }
die() { echo "cluster: $*" >&2; exit 1; }

dc_of() {
    local i=$1 n=$2
    if [ "$n" -ge 5 ]; then
        case $i in 1 | 2) echo dc-a ;; 3 | 4) echo dc-b ;; *) echo dc-c ;; esac
    else
        case $i in 1) echo dc-a ;; 2) echo dc-b ;; *) echo dc-c ;; esac
    fi
}

hsm_args() { echo --node-dir "$dir/node-$1/hsm" --token "node-$1" --pin-file "$dir/secrets/user.pin"; }

wait_until() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.1
    done
}

status_of() { curl -fsS --max-time 2 "http://127.0.0.1:$((BKV_BASE + 200 + $1))/v1/status" 2>/dev/null; }

# The leader's id once a ready leader exists and every live node agrees.
leader_id() {
    local i s role lid=0 d
    for d in "$dir"/node-*/; do
        i=${d%/}
        i=${i##*/node-}
        s=$(status_of "$i") || continue
        role=$(printf '%s' "$s" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["role"])')
        [ "$role" = leader ] && lid=$i
    done
    [ "$lid" -ne 0 ] && echo "$lid"
}
have_leader() { leader_id >/dev/null; }

# The gateway port the router uses for node $1: its own, or its capture proxy's.
gateway_port() {
    if [ "$capture" = 1 ]; then echo $((base + 500 + $1)); else echo $((base + 100 + $1)); fi
}

start_capture() {
    local routes=("client=$((base + 450)):127.0.0.1:$((base + 400))") i
    for i in $(seq 1 "$nodes"); do routes+=("node-$i=$((base + 500 + i)):127.0.0.1:$((base + 100 + i))"); done
    mkdir -p "$dir/capture"
    rm -f "$dir/capture/ready"
    setsid python3 "$here/tests/e2e/capture_proxy.py" --out "$dir/capture" --ready "$dir/capture/ready" \
        "${routes[@]}" >>"$dir/capture/proxy.log" 2>&1 &
    echo $! >"$dir/capture/pid"
    wait_until 10 test -e "$dir/capture/ready" || die "the capture proxy did not start: $(cat "$dir/capture/proxy.log")"
}

start_node() {
    local i=$1 extra=${2:-}
    # shellcheck disable=SC2086
    setsid "$node_bin" --config "$dir/node-$i/node.conf" $extra >>"$dir/node-$i/node.log" 2>&1 &
    echo $! >"$dir/node-$i/pid"
}

write_conf() {
    local i=$1 m
    {
        echo "# bkv-node $i, written by scripts/cluster.sh"
        echo "[node]"
        echo "id = $i"
        echo "dc = $(dc_of "$i" "$nodes")"
        echo "raft = 127.0.0.1:$((base + i))"
        echo "gateway = 127.0.0.1:$((base + 100 + i))"
        echo "admin = 127.0.0.1:$((base + 200 + i))"
        echo "data_dir = $dir/node-$i/data"
        echo "max_attempts = $limit"
        echo "election_timeout_ms = 1000"
        if [ -n "$snap_threshold" ]; then
            echo "snapshot_threshold = $snap_threshold"
            echo "snapshot_trailing = $(((snap_threshold + 1) / 2))"
        fi
        [ -n "$log_level" ] && echo "log_level = $log_level"
        echo
        echo "[hsm]"
        echo "token = node-$i"
        echo "pin_file = $dir/secrets/user.pin"
        echo "node_dir = $dir/node-$i/hsm"
        echo "realm_dir = $dir/realm"
        echo
        echo "[router]"
        echo "proof_key_file = $dir/router/router-proof.key"
        echo
        echo "[admin]"
        echo "token_file = $dir/secrets/admin.token"
        for m in $(seq 1 $((nodes + spares))); do
            echo
            echo "[member $m]"
            [ "$m" -gt "$nodes" ] && printf "# a spare: added later with bkv-admin members add\ninitial = no\n"
            echo "dc = $(dc_of "$m" "$nodes")"
            echo "raft = 127.0.0.1:$((base + m))"
            echo "gateway = 127.0.0.1:$((base + 100 + m))"
            echo "admin = 127.0.0.1:$((base + 200 + m))"
            echo "snapshot = 127.0.0.1:$((base + 300 + m))"
        done
    } >"$dir/node-$i/node.conf"
}

enrol() {
    local i=$1
    local req="$dir/enrol/node-$i.req" blob="$dir/enrol/node-$i.blob" out="$dir/enrol/node-$i.out"
    # shellcheck disable=SC2046
    "$admin_bin" enrol join $(hsm_args "$i") --request-out "$req" --blob "$blob" \
        --realm "$dir/realm" --timeout 120 >"$out" 2>"$dir/enrol/node-$i.err" &
    local pid=$!
    wait_until 60 grep -qs '^waiting for' "$out" || die "enrol join node-$i: $(cat "$dir/enrol/node-$i.err")"
    local fp
    fp=$(sed -n 's/^fingerprint: *//p' "$out")
    log "node-$i asks to join with fingerprint $fp; approving it on node-1 (SO PIN)"
    # shellcheck disable=SC2046
    "$admin_bin" enrol approve $(hsm_args 1) --so-pin-file "$dir/secrets/so.pin" \
        --request "$req" --fingerprint "$fp" --realm "$dir/realm" --out "$blob" >/dev/null ||
        die "enrol approve for node-$i failed"
    wait "$pid" || die "enrol join node-$i: $(cat "$dir/enrol/node-$i.err")"
}

up() {
    [ -x "$node_bin" ] && [ -x "$router_bin" ] && [ -x "$admin_bin" ] ||
        die "build first: $build/node/{bkv-node,bkv-router,bkv-admin} are missing"
    [ -e "$dir/cluster.env" ] && die "$dir already holds a cluster; use another --dir or 'down' it and remove it"
    mkdir -p "$dir/secrets" "$dir/router" "$dir/enrol"
    chmod 700 "$dir" "$dir/secrets"
    # Throwaway PINs for a local cluster; a real deployment keeps each node's PIN file on that node.
    head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/secrets/user.pin"
    head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/secrets/so.pin"
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/secrets/admin.token"
    chmod 600 "$dir/secrets/user.pin" "$dir/secrets/so.pin" "$dir/secrets/admin.token"

    log "provisioning $nodes SoftHSM2 tokens"
    for i in $(seq 1 "$nodes"); do
        mkdir -p "$dir/node-$i"
        chmod 700 "$dir/node-$i"
        # shellcheck disable=SC2046
        "$admin_bin" token init $(hsm_args "$i") --so-pin-file "$dir/secrets/so.pin" >/dev/null
    done
    log "creating the realm in node-1's HSM"
    # shellcheck disable=SC2046
    "$admin_bin" realm create $(hsm_args 1) --out "$dir/realm" >/dev/null
    for i in $(seq 2 "$nodes"); do enrol "$i"; done

    log "router key, and the key config clients pin"
    "$admin_bin" router keygen --out-dir "$dir/router" >/dev/null
    "$admin_bin" realm keyconfig --realm-dir "$dir/realm" --ksf argon2id --ksf-t "$ksf_t" \
        --ksf-m-kib "$ksf_m" --ksf-p "$ksf_p" --out "$dir/router/keyconfig.bin" >"$dir/router/keyconfig.txt"
    local fp
    fp=$(grep -oE '[0-9a-f]{64}' "$dir/router/keyconfig.txt" | head -1)
    [ -n "$fp" ] || die "no fingerprint from realm keyconfig: $(cat "$dir/router/keyconfig.txt")"

    for i in $(seq 1 "$nodes"); do
        mkdir -p "$dir/node-$i/data"
        write_conf "$i"
    done
    local front=$((base + 400))
    [ "$capture" = 1 ] && front=$((base + 450))
    cat >"$dir/cluster.env" <<EOF
BKV_NODES=$nodes
BKV_BASE=$base
BKV_LIMIT=$limit
BKV_BUILD=$build
BKV_SNAPSHOT_THRESHOLD=$snap_threshold
BKV_SPARES=$spares
BKV_ROUTER=127.0.0.1:$front
BKV_ROUTER_DIRECT=127.0.0.1:$((base + 400))
BKV_KEYCONFIG=$dir/router/keyconfig.bin
BKV_FINGERPRINT=$fp
BKV_CAPTURE=$([ "$capture" = 1 ] && echo "$dir/capture")
EOF
    . "$dir/cluster.env"
    if [ "$capture" = 1 ]; then
        log "starting the capture proxies (router on $BKV_ROUTER, gateways on $((base + 501))...)"
        start_capture
    fi
    log "starting $nodes nodes"
    for i in $(seq 1 "$nodes"); do start_node "$i" --bootstrap; done
    local gw=()
    for i in $(seq 1 $((nodes + spares))); do gw+=(--node "127.0.0.1:$(gateway_port "$i")"); done
    setsid "$router_bin" --listen "$BKV_ROUTER_DIRECT" "${gw[@]}" --key "$dir/router/router.key" \
        --keyconfig "$dir/router/keyconfig.bin" "${router_args[@]}" >>"$dir/router/router.log" 2>&1 &
    echo $! >"$dir/router/pid"
    if ! wait_until 60 have_leader; then
        tail -n 5 "$dir"/node-*/node.log >&2 || true
        die "no leader within 60 s"
    fi
    wait_until 10 curl -fsS --max-time 1 -o /dev/null "http://$BKV_ROUTER/v1/keyconfig" ||
        die "the router does not answer: $(tail -n 5 "$dir/router/router.log")"
    log "up: leader is node-$(leader_id); router on $BKV_ROUTER; key config fingerprint $fp"
}

stop_pid() {
    local f=$1 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

down() {
    stop_pid "$dir/router/pid"
    for f in "$dir"/node-*/pid; do [ -e "$f" ] && stop_pid "$f"; done
    stop_pid "$dir/capture/pid"
    log "stopped every process of $dir"
}

case $cmd in
up) up ;;
down) down ;;
kill)
    [ -n "$node" ] || die "--node N is required"
    pid=$(cat "$dir/node-$node/pid")
    kill -"$sig" "$pid"
    wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || die "node-$node (pid $pid) did not die"
    rm -f "$dir/node-$node/pid"
    ;;
start)
    [ -n "$node" ] || die "--node N is required"
    start_node "$node"
    ;;
leader)
    wait_until 30 have_leader || die "no leader within 30 s"
    leader_id
    ;;
add)
    [ -n "$node" ] || die "--node K is required"
    [ -e "$dir/node-$node" ] && die "node-$node exists already"
    nodes=$BKV_NODES base=$BKV_BASE limit=$BKV_LIMIT snap_threshold=${BKV_SNAPSHOT_THRESHOLD:-}
    spares=${BKV_SPARES:-0}
    [ "$node" -gt "$nodes" ] && [ "$node" -le $((nodes + spares)) ] ||
        die "node $node is not one of the spares (up --spares N reserves nodes $((nodes + 1)).. )"
    mkdir -p "$dir/node-$node/data"
    chmod 700 "$dir/node-$node"
    # shellcheck disable=SC2046
    "$admin_bin" token init $(hsm_args "$node") --so-pin-file "$dir/secrets/so.pin" >/dev/null
    # The approving member's HSM is held by its running bkv-node (one process per token):
    # stop node 1 for the ceremony (the others keep a quorum), and start it again whatever
    # happens.
    approver_running=0
    if [ -f "$dir/node-1/pid" ] && kill -0 "$(cat "$dir/node-1/pid")" 2>/dev/null; then
        approver_running=1
        stop_pid "$dir/node-1/pid"
        trap 'start_node 1' EXIT
    fi
    enrol "$node"
    if [ "$approver_running" = 1 ]; then
        trap - EXIT
        start_node 1
        wait_until 30 status_of 1 >/dev/null || die "node-1 did not come back after the ceremony"
    fi
    write_conf "$node"
    start_node "$node"
    wait_until 30 status_of "$node" >/dev/null || die "node-$node does not answer"
    log "node-$node started (raft 127.0.0.1:$((BKV_BASE + node))); add it with bkv-admin members add"
    ;;
token)
    [ -n "$account" ] || die "--account A is required"
    "$admin_bin" token issue --key "$dir/router/router.key" --account "$account" --ttl "$ttl"
    ;;
*) echo "cluster: usage: $0 up|down|kill|start|add|leader|token --dir DIR ... (see --help)" >&2; exit 2 ;;
esac
