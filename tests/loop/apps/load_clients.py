"""Kernel-socket clients in the shapes users bring (run by the tests, inside their namespace).

    python load_clients.py MODE HOST PORT [N]

MODE:
  hold   N connections opened together and all held open; then each sends a line and reads
         its echo while the others stay open; then all close.
  burst  N connections started at once (no pacing), each sends a line, reads its echo, closes.
  ws     N websocket clients (aiohttp) on ws://HOST:PORT/ws, all held open, each sending
         ROUNDS messages 0.2 s apart and checking every echo.
  lines  the same shape as ws as a line protocol on plain streams (no aiohttp).
  big    one client: writer.write(8 MiB); await drain(); readexactly(8 MiB); compare.

Prints one JSON line: {"connected", "answered", "errors": {exception name: count}}.
Raises RLIMIT_NOFILE first: the kernel side needs a descriptor per connection.
"""

import asyncio
import collections
import json
import os
import resource
import sys

ROUNDS = 5
INTERVAL = 0.2
BIG = 8 * 2**20
DEADLINE = 120


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(n + 256, soft), hard) if hard != resource.RLIM_INFINITY else max(n + 256, soft)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Tally:
    def __init__(self, n):
        self.n = n
        self.connected = 0
        self.answered = 0
        self.errors = collections.Counter()
        self.all_connected = asyncio.Event()
        self.all_answered = asyncio.Event()

    def arrived(self, field):
        setattr(self, field, getattr(self, field) + 1)
        self.check()

    def failed(self, exc):
        self.errors[type(exc).__name__] += 1
        self.check()

    def check(self):
        failed = sum(self.errors.values())
        if self.connected + failed >= self.n:
            self.all_connected.set()
        if self.answered + failed >= self.n:
            self.all_answered.set()

    def report(self):
        return {"connected": self.connected, "answered": self.answered, "errors": dict(self.errors)}


async def hold(t, host, port, i):
    try:
        reader, writer = await asyncio.open_connection(host, port)
        t.arrived("connected")
        await t.all_connected.wait()
        writer.write(b"hold %d\n" % i)
        if await reader.readline() == b"hold %d\n" % i:
            t.arrived("answered")
        else:
            raise AssertionError("wrong echo")
        await t.all_answered.wait()
        writer.close()
        await writer.wait_closed()
    except Exception as e:          # noqa: BLE001 - every failure is counted by kind
        t.failed(e)


async def burst(t, host, port, i):
    try:
        reader, writer = await asyncio.open_connection(host, port)
        t.arrived("connected")
        writer.write(b"burst %d\n" % i)
        if await reader.readline() != b"burst %d\n" % i:
            raise AssertionError("wrong echo")
        t.arrived("answered")
        writer.close()
        await writer.wait_closed()
    except Exception as e:          # noqa: BLE001
        t.failed(e)


async def lines(t, host, port, i):
    try:
        reader, writer = await asyncio.open_connection(host, port)
        t.arrived("connected")
        await t.all_connected.wait()
        for k in range(ROUNDS):
            writer.write(b"client %d message %d\n" % (i, k))
            if await reader.readline() != b"client %d message %d\n" % (i, k):
                raise AssertionError("wrong echo")
            await asyncio.sleep(INTERVAL)
        t.arrived("answered")
        await t.all_answered.wait()
        writer.close()
        await writer.wait_closed()
    except Exception as e:          # noqa: BLE001
        t.failed(e)


async def ws(t, session, url, i):
    try:
        async with session.ws_connect(url, autoping=True, heartbeat=None) as sock:
            t.arrived("connected")
            await t.all_connected.wait()
            for k in range(ROUNDS):
                await sock.send_str(f"client {i} message {k}")
                msg = await sock.receive()
                if msg.data != f"client {i} message {k}":
                    raise AssertionError(f"wrong echo {msg!r}")
                await asyncio.sleep(INTERVAL)
            t.arrived("answered")
            await t.all_answered.wait()
    except Exception as e:          # noqa: BLE001
        t.failed(e)


async def big(t, host, port):
    try:
        reader, writer = await asyncio.open_connection(host, port)
        t.arrived("connected")
        payload = os.urandom(BIG)
        writer.write(payload)
        await writer.drain()
        if await reader.readexactly(BIG) != payload:
            raise AssertionError("echo differs")
        t.arrived("answered")
        writer.close()
        await writer.wait_closed()
    except Exception as e:          # noqa: BLE001
        t.failed(e)


async def main(mode, host, port, n):
    t = Tally(n)
    if mode == "ws":
        import aiohttp
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as session:
            url = f"http://{host}:{port}/ws"
            await asyncio.wait_for(asyncio.gather(*(ws(t, session, url, i) for i in range(n))), DEADLINE)
    elif mode == "big":
        await asyncio.wait_for(big(t, host, port), DEADLINE)
    else:
        body = {"hold": hold, "burst": burst, "lines": lines}[mode]
        await asyncio.wait_for(asyncio.gather(*(body(t, host, port, i) for i in range(n))), DEADLINE)
    print(json.dumps(t.report()), flush=True)


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    raise_nofile(n)
    asyncio.run(main(mode, host, port, n))
