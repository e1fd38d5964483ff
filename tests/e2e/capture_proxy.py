#!/usr/bin/env python3
"""A TCP proxy that records every byte it forwards, for the e2e leak scan.

    capture_proxy.py --out DIR [--ready FILE] NAME=LISTEN_PORT:HOST:PORT ...

For each NAME it listens on 127.0.0.1:LISTEN_PORT and forwards each accepted
connection to HOST:PORT. The bytes going towards the target are appended to
DIR/NAME.up and the bytes coming back to DIR/NAME.down (all connections of a
NAME share its two files). A target that refuses the connection gets the
client's connection closed, as a dead host would. FILE is written once every
listener is bound. It runs until SIGTERM or SIGINT.
"""
import argparse
import asyncio
import os
import signal
import sys


async def pump(reader, writer, sink):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            sink.write(data)
            sink.flush()
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


def handler(host, port, up, down):
    async def handle(creader, cwriter):
        try:
            treader, twriter = await asyncio.open_connection(host, port)
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(pump(creader, twriter, up), pump(treader, cwriter, down))
        for w in (cwriter, twriter):
            try:
                w.close()
            except OSError:
                pass

    return handle


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--ready")
    ap.add_argument("routes", nargs="+", metavar="NAME=LISTEN_PORT:HOST:PORT")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    servers = []
    for route in args.routes:
        name, _, spec = route.partition("=")
        lport, host, tport = spec.split(":")
        up = open(os.path.join(args.out, name + ".up"), "ab")
        down = open(os.path.join(args.out, name + ".down"), "ab")
        srv = await asyncio.start_server(
            handler(host, int(tport), up, down), "127.0.0.1", int(lport), reuse_address=True
        )
        servers.append(srv)
    if args.ready:
        with open(args.ready, "w") as f:
            f.write("ready\n")
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(
            sig, lambda: stop.done() or stop.set_result(None)
        )
    await stop
    for srv in servers:
        srv.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except OSError as e:
        print(f"capture_proxy: {e}", file=sys.stderr)
        sys.exit(1)
