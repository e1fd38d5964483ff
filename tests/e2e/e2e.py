#!/usr/bin/env python3
"""Helpers for the e2e shell tests: cluster state, the leak scan, raw HTTP.

    e2e.py converge --base B --nodes N [--down 2,3] [--timeout 30]
        Wait until exactly one live node is the ready leader and every live
        node's applied_index (and store.state_index, the index its hash and
        counts were computed at) equals the leader's commit_index, then print
        "leader=ID commit=C hash=H records=R tombstones=T" if all live nodes
        have the same state hash, records and tombstones; exit 1 with every
        node's view if that does not happen before the timeout.
    e2e.py field --base B --node I KEY[.KEY]   one field of a node's /v1/status
    e2e.py wait-commit --base B --nodes N --above C [--timeout 30]
        Wait until the leader's commit index is above C; print
        "COMMIT LEADER_ID".
    e2e.py leader --base B --nodes N [--not ID] [--timeout 30]
        Wait until one answering node is the ready leader (and it is not
        ID); print its id.
    e2e.py leakscan --secrets FILE [--expect SUBSTR]... PATH...
        FILE has "name hex" lines. Every regular file under each PATH is
        searched for each secret as raw bytes, lowercase and uppercase hex,
        and base64 / base64url. Prints every hit and exits 1 if there is one;
        also exits 1 if no scanned path contains an --expect substring (so
        the scan provably covered e.g. the SQLite WAL or the capture files).
    e2e.py bodies FILE
        FILE holds captured HTTP requests (capture_proxy.py's NAME.up); print
        "envelope.N HEX" for the HPKE enc (bytes 7..72) of each POST body,
        for a leakscan of the logs.
    e2e.py http --addr H:P --case NAME
        One malformed HTTP exchange; prints "case=NAME status=S" (S = 0 when
        the server closed without an answer; "timeout" if it kept silent).
"""
import argparse
import base64
import json
import os
import socket
import sys
import time
import urllib.request


def status(base, i, timeout=2.0):
    url = f"http://127.0.0.1:{base + 200 + i}/v1/status"
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def views(base, nodes, down):
    out = {}
    for i in range(1, nodes + 1):
        if i in down:
            continue
        try:
            out[i] = status(base, i)
        except Exception as e:  # a node that does not answer (yet)
            out[i] = {"error": str(e)}
    return out


def converged(v):
    if any("error" in s for s in v.values()):
        return None
    leaders = [i for i, s in v.items() if s.get("role") == "leader"]
    if len(leaders) != 1:
        return None
    lead = v[leaders[0]]
    commit = lead["commit_index"]
    if any(s["applied_index"] != commit for s in v.values()):
        return None
    # The store's hash and counts are computed at most once a second; state_index
    # says at which applied index they were.
    if any(s["store"].get("state_index", commit) != commit for s in v.values()):
        return None
    keys = {(s["store"]["state_hash"], s["store"]["records"], s["store"]["tombstones"]) for s in v.values()}
    if len(keys) != 1:
        return None
    h, rec, tomb = keys.pop()
    return f"leader={leaders[0]} commit={commit} hash={h} records={rec} tombstones={tomb}"


def describe(v):
    parts = []
    for i, s in sorted(v.items()):
        if "error" in s:
            parts.append(f"node-{i}: {s['error']}")
        else:
            parts.append(
                f"node-{i}: role={s['role']} term={s['term']} commit={s['commit_index']} "
                f"applied={s['applied_index']} state_index={s['store'].get('state_index')} "
                f"hash={s['store']['state_hash'][:16]} "
                f"records={s['store']['records']} tombstones={s['store']['tombstones']}"
            )
    return "; ".join(parts)


def cmd_converge(a):
    down = {int(x) for x in a.down.split(",") if x} if a.down else set()
    end = time.monotonic() + a.timeout
    last = {}
    while True:
        last = views(a.base, a.nodes, down)
        ok = converged(last)
        if ok:
            print(ok)
            return 0
        if time.monotonic() >= end:
            print(f"not converged after {a.timeout}s: {describe(last)}", file=sys.stderr)
            return 1
        time.sleep(0.1)


def cmd_field(a):
    d = status(a.base, a.node)
    for k in a.key.split("."):
        d = d[k]
    print(d)
    return 0


def cmd_wait_commit(a):
    end = time.monotonic() + a.timeout
    while True:
        v = views(a.base, a.nodes, set())
        for s in v.values():
            if s.get("role") == "leader" and s["commit_index"] > a.above:
                print(s["commit_index"], s["id"])
                return 0
        if time.monotonic() >= end:
            print(f"commit not above {a.above} after {a.timeout}s: {describe(v)}", file=sys.stderr)
            return 1
        time.sleep(0.05)


def cmd_leader(a):
    end = time.monotonic() + a.timeout
    while True:
        v = views(a.base, a.nodes, set())
        leaders = [i for i, s in v.items() if s.get("role") == "leader"]
        if len(leaders) == 1 and leaders[0] != a.exclude:
            print(leaders[0])
            return 0
        if time.monotonic() >= end:
            print(f"no new leader after {a.timeout}s: {describe(v)}", file=sys.stderr)
            return 1
        time.sleep(0.05)


def forms(raw):
    yield "raw", raw
    yield "hex", raw.hex().encode()
    yield "HEX", raw.hex().upper().encode()
    b64 = base64.b64encode(raw)
    yield "base64", b64.rstrip(b"=")
    yield "base64url", base64.urlsafe_b64encode(raw).rstrip(b"=")


def cmd_leakscan(a):
    secrets = []
    with open(a.secrets) as f:
        for ln in f:
            ln = ln.split()
            if len(ln) == 2 and ln[1] != "-":
                raw = bytes.fromhex(ln[1])
                if len(raw) < 8:
                    print(f"leakscan: secret {ln[0]} is too short to scan for", file=sys.stderr)
                    return 2
                secrets.append((ln[0], list(forms(raw))))
    if not secrets:
        print("leakscan: no secrets given", file=sys.stderr)
        return 2
    files, total, hits = [], 0, []
    for root in a.paths:
        for dirpath, _, names in os.walk(root):
            for n in names:
                p = os.path.join(dirpath, n)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                try:
                    with open(p, "rb") as f:
                        data = f.read()
                except OSError as e:
                    print(f"leakscan: cannot read {p}: {e}", file=sys.stderr)
                    return 2
                files.append(p)
                total += len(data)
                for name, fs in secrets:
                    for form, needle in fs:
                        off = data.find(needle)
                        if off >= 0:
                            hits.append(f"LEAK {name} as {form} in {p} at offset {off}")
    missing = [e for e in a.expect if not any(e in p for p in files)]
    for h in hits:
        print(h)
    print(f"leakscan: {len(secrets)} secrets, {len(files)} files, {total} bytes, {len(hits)} hits")
    if missing:
        print(f"leakscan: nothing scanned matches {missing}", file=sys.stderr)
        return 1
    return 1 if hits else 0


def cmd_bodies(a):
    with open(a.file, "rb") as f:
        data = f.read()
    n, pos = 0, 0
    while True:
        start = data.find(b"POST ", pos)
        if start < 0:
            break
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            break
        length = 0
        for ln in data[start:end].split(b"\r\n")[1:]:
            k, _, v = ln.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        body = data[end + 4 : end + 4 + length]
        if len(body) >= 72:
            print(f"envelope.{n} {body[7:72].hex()}")
            n += 1
        pos = end + 4 + length
    return 0 if n else 1


HTTP_CASES = {
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    "bad-request-line": b"HELLO WORLD\r\n\r\n",
    "bad-header": b"POST /v1/vault HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    "huge-header": b"POST /v1/vault HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    "bad-chunked": b"POST /v1/vault HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "cl-te": b"POST /v1/vault HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad-length": b"POST /v1/vault HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "oversized-length": b"POST /v1/vault HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n"
    b"Content-Length: 100000000\r\n\r\n",
    "short-body": b"POST /v1/vault HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
    "wrong-method": b"GET /v1/vault HTTP/1.1\r\nHost: x\r\n\r\n",
    "unknown-path": b"POST /v1/nothing-here HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
}


def cmd_http(a):
    host, port = a.addr.rsplit(":", 1)
    req = HTTP_CASES[a.case]
    s = socket.create_connection((host, int(port)), timeout=5)
    try:
        try:
            s.sendall(req)
            if a.case == "short-body":
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close while a huge request is still going out
        data = b""
        try:
            while len(data) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data and a.case != "short-body":
                    break
        except socket.timeout:
            if not data:
                print(f"case={a.case} status=timeout")
                return 0
        except OSError:
            pass
    finally:
        s.close()
    st = 0
    if data.startswith(b"HTTP/1."):
        try:
            st = int(data.split(b" ", 2)[1])
        except (IndexError, ValueError):
            st = -1
    print(f"case={a.case} status={st}")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("converge")
    c.add_argument("--base", type=int, required=True)
    c.add_argument("--nodes", type=int, required=True)
    c.add_argument("--down", default="")
    c.add_argument("--timeout", type=float, default=30)
    f = sub.add_parser("field")
    f.add_argument("--base", type=int, required=True)
    f.add_argument("--node", type=int, required=True)
    f.add_argument("key")
    w = sub.add_parser("wait-commit")
    w.add_argument("--base", type=int, required=True)
    w.add_argument("--nodes", type=int, required=True)
    w.add_argument("--above", type=int, required=True)
    w.add_argument("--timeout", type=float, default=30)
    ld = sub.add_parser("leader")
    ld.add_argument("--base", type=int, required=True)
    ld.add_argument("--nodes", type=int, required=True)
    ld.add_argument("--not", dest="exclude", type=int, default=0)
    ld.add_argument("--timeout", type=float, default=30)
    l = sub.add_parser("leakscan")
    l.add_argument("--secrets", required=True)
    l.add_argument("--expect", action="append", default=[])
    l.add_argument("paths", nargs="+")
    b = sub.add_parser("bodies")
    b.add_argument("file")
    h = sub.add_parser("http")
    h.add_argument("--addr", required=True)
    h.add_argument("--case", required=True, choices=sorted(HTTP_CASES))
    a = ap.parse_args()
    return {
        "converge": cmd_converge,
        "field": cmd_field,
        "wait-commit": cmd_wait_commit,
        "leader": cmd_leader,
        "leakscan": cmd_leakscan,
        "http": cmd_http,
        "bodies": cmd_bodies,
    }[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
