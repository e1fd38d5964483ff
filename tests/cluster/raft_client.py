#!/usr/bin/env python3
"""Control-port client for bkv-raftd (tests/cluster/raftd.c), used by raft_cluster.sh.

  raft_client.py ctl ADDR LINE...           send the lines, print one reply per line
  raft_client.py wait-leader NODES [--timeout S]
        print the id of a node whose role is "leader" (barrier committed)
  raft_client.py wait-converged NODES [--timeout S]
        wait until every node answers with the same applied index and hash
  raft_client.py state NODES --accounts K   print each node's hash and counters
  raft_client.py burst NODES --count N --accounts K [--window W] [--type T]
        [--blob BYTES] [--seed S] [--acks FILE] [--stop-on-err] [--timeout S]
        send N requests (request i on account i % K, its own request id),
        pipelined W at a time to the leader; follow NOTLEADER, retry with the
        SAME request id on NOTREADY, LOST and lost connections; append every
        acknowledged result to FILE as "i account reqid reply"
  raft_client.py verify NODES --acks FILE --count N --accounts K [--seed S] [--type T]
        every node equal (counters and hash); ATTEMPT: no acknowledged attempt
        lost (counter >= acknowledged, == sent when all were acknowledged);
        REGISTER: every acknowledged registration is live

NODES is "1=127.0.0.1:9101,2=...". Exit status 0 on success, 1 on failure.
"""
import argparse
import collections
import hashlib
import socket
import sys
import time


def parse_nodes(text):
    nodes = {}
    for part in text.split(","):
        nid, addr = part.split("=", 1)
        host, port = addr.rsplit(":", 1)
        nodes[int(nid)] = (host, int(port))
    return nodes


def account(i, seed):
    return hashlib.sha256(("acct-%s-%d" % (seed, i)).encode()).hexdigest()


def reqid(i, seed, kind):
    return hashlib.sha256(("req-%s-%s-%d" % (seed, kind, i)).encode()).hexdigest()[:32]


class Conn:
    def __init__(self, addr, timeout=3.0):
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.settimeout(timeout)
        self.file = self.sock.makefile("rb")

    def send(self, line):
        self.sock.sendall((line + "\n").encode())

    def recv(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("connection closed")
        return line.decode().rstrip("\n")

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


def ask(addr, line, timeout=2.0):
    c = Conn(addr, timeout)
    try:
        c.send(line)
        return c.recv()
    finally:
        c.close()


def status(addr):
    try:
        reply = ask(addr, "STATUS")
    except (OSError, ConnectionError):
        return None
    return dict(kv.split("=", 1) for kv in reply.split() if "=" in kv)


def find_leader(nodes, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for nid, addr in nodes.items():
            st = status(addr)
            if st is not None and st.get("role") == "leader":
                return nid
        time.sleep(0.05)
    return None


def cmd_wait_leader(a):
    nid = find_leader(parse_nodes(a.nodes), a.timeout)
    if nid is None:
        print("no leader within %.0f s" % a.timeout, file=sys.stderr)
        return 1
    print(nid)
    return 0


def cmd_wait_converged(a):
    nodes = parse_nodes(a.nodes)
    deadline = time.time() + a.timeout
    last = None
    while time.time() < deadline:
        sts = {nid: status(addr) for nid, addr in nodes.items()}
        last = sts
        if all(st is not None for st in sts.values()):
            applied = {st["applied"] for st in sts.values()}
            hashes = {st["hash"] for st in sts.values()}
            leaders = [st for st in sts.values() if st["role"] == "leader"]
            if len(applied) == 1 and len(hashes) == 1 and leaders:
                for nid in sorted(sts):
                    print("node %d: %s" % (nid, " ".join(
                        "%s=%s" % (k, sts[nid][k]) for k in
                        ("role", "term", "applied", "store_applied", "live", "tombstones", "hash"))))
                return 0
        time.sleep(0.05)
    print("not converged within %.0f s: %r" % (a.timeout, last), file=sys.stderr)
    return 1


def counters(addr, k, seed):
    c = Conn(addr)
    try:
        for i in range(k):
            c.send("COUNTER %s" % account(i, seed))
        return [c.recv() for _ in range(k)]
    finally:
        c.close()


def cmd_state(a):
    nodes = parse_nodes(a.nodes)
    for nid, addr in sorted(nodes.items()):
        st = status(addr)
        if st is None:
            print("node %d: unreachable" % nid)
            return 1
        print("node %d hash=%s live=%s tombstones=%s" % (nid, st["hash"], st["live"], st["tombstones"]))
        for i, line in enumerate(counters(addr, a.accounts, a.seed)):
            print("node %d account %d %s" % (nid, i, line))
    return 0


def request_line(kind, i, a):
    acct, rid = account(i % a.accounts, a.seed), reqid(i, a.seed, kind)
    if kind == "REGISTER":
        blob = ("%02x" % (i % 251)) * a.blob
        return acct, rid, "REGISTER %s %s %s %s" % (acct, rid, blob, blob)
    return acct, rid, "%s %s %s" % (kind, acct, rid)


def cmd_burst(a):
    nodes = parse_nodes(a.nodes)
    todo = collections.deque(range(a.count))
    acked = set()
    stats = collections.Counter()
    acks = open(a.acks, "a") if a.acks else None
    deadline = time.time() + a.timeout
    leader, conn, err = None, None, None
    while len(acked) < a.count and time.time() < deadline and err is None:
        if conn is None:
            if leader is None:
                leader = find_leader(nodes, max(0.1, deadline - time.time()))
                if leader is None:
                    break
            try:
                conn = Conn(nodes[leader])
            except OSError:
                stats["connect-failed"] += 1
                leader = None
                time.sleep(0.05)
                continue
        outstanding = collections.deque()
        switch_to = None
        backoff = False
        try:
            while todo and len(outstanding) < a.window:
                i = todo.popleft()
                if i in acked:
                    continue
                acct, rid, line = request_line(a.type, i, a)
                conn.send(line)
                outstanding.append((i, acct, rid))
            while outstanding:
                reply = conn.recv()
                i, acct, rid = outstanding.popleft()
                if reply.startswith("OK "):
                    if i not in acked:
                        acked.add(i)
                        if " replayed=1" in reply:
                            stats["replayed"] += 1
                        if acks:
                            acks.write("%d %s %s %s\n" % (i, acct, rid, reply))
                            acks.flush()
                    continue
                todo.append(i)
                stats[reply.split()[0]] += 1
                if reply.startswith("NOTLEADER"):
                    lid = int(reply.split()[1].split("=")[1])
                    switch_to = lid if lid in nodes and lid != leader else None
                    backoff = switch_to is None
                elif reply in ("NOTREADY", "LOST"):
                    backoff = True
                else:
                    stats["errors"] += 1
                    if a.stop_on_err:
                        err = reply
        except (OSError, ConnectionError):
            stats["connection-lost"] += 1
            todo.extend(i for i, _, _ in outstanding)
            conn.close()
            conn, leader = None, None
            continue
        if switch_to is not None or backoff:
            conn.close()
            conn, leader = None, switch_to
            if backoff:
                time.sleep(0.02)
    if conn is not None:
        conn.close()
    if acks:
        acks.close()
    print("burst: %d/%d acknowledged; %s%s" % (
        len(acked), a.count, ", ".join("%s=%d" % kv for kv in sorted(stats.items())) or "no retries",
        "; stopped on: " + err if err else ""))
    return 0 if len(acked) == a.count else 1


def cmd_verify(a):
    nodes = parse_nodes(a.nodes)
    acked = collections.defaultdict(set)
    all_acked = set()
    with open(a.acks) as f:
        for line in f:
            i, acct, rid = line.split()[:3]
            acked[acct].add(rid)
            all_acked.add(int(i))
    failures = 0
    views = {}
    for nid, addr in sorted(nodes.items()):
        st = status(addr)
        if st is None:
            print("FAIL node %d unreachable" % nid)
            return 1
        views[nid] = (st["hash"], counters(addr, a.accounts, a.seed))
    first = min(views)
    for nid, view in views.items():
        if view != views[first]:
            print("FAIL node %d differs from node %d (hash %s vs %s)" % (
                nid, first, view[0][:16], views[first][0][:16]))
            failures += 1
    for k in range(a.accounts):
        acct = account(k, a.seed)
        if a.type == "REGISTER":
            if acked[acct] and "live=1" not in views[first][1][k].split():
                print("FAIL account %d: registration acknowledged, now %s" % (k, views[first][1][k]))
                failures += 1
            continue
        got = int(views[first][1][k].split()[0].split("=")[1])
        sent = len(range(k, a.count, a.accounts))
        want = len(acked[acct])
        complete = all(i in all_acked for i in range(k, a.count, a.accounts))
        if got < want or (complete and got != sent):
            print("FAIL account %d: counter %d, %d acknowledged, %d sent" % (k, got, want, sent))
            failures += 1
    print("verify: %d accounts, %d acknowledged requests, %d nodes equal: %s" % (
        a.accounts, len(all_acked), len(views), "ok" if failures == 0 else "%d failures" % failures))
    return 0 if failures == 0 else 1


def cmd_ctl(a):
    c = Conn(parse_nodes("0=" + a.addr)[0], a.timeout)
    try:
        for line in a.lines:
            c.send(line)
        for _ in a.lines:
            print(c.recv())
    finally:
        c.close()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("ctl")
    s.add_argument("addr")
    s.add_argument("lines", nargs="+")
    s.add_argument("--timeout", type=float, default=5)
    for name in ("wait-leader", "wait-converged", "state", "burst", "verify"):
        s = sub.add_parser(name)
        s.add_argument("nodes")
        s.add_argument("--timeout", type=float, default=20)
        s.add_argument("--accounts", type=int, default=16)
        s.add_argument("--count", type=int, default=0)
        s.add_argument("--seed", default="bkv")
        s.add_argument("--acks")
        s.add_argument("--type", default="ATTEMPT", choices=("ATTEMPT", "REGISTER"))
        if name == "burst":
            s.add_argument("--window", type=int, default=32)
            s.add_argument("--blob", type=int, default=16)
            s.add_argument("--stop-on-err", action="store_true")
    a = p.parse_args()
    return {"ctl": cmd_ctl, "wait-leader": cmd_wait_leader, "wait-converged": cmd_wait_converged,
            "state": cmd_state, "burst": cmd_burst, "verify": cmd_verify}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
