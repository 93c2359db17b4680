"""Servers on aiorusty under the loads users bring, clients from the Linux kernel over a tap.

The loop under test runs in this process on a stack whose only interface is a tap; the
tap's kernel end lives in a network namespace the test creates, and the clients
(apps/load_clients.py, kernel sockets) run in that namespace:

  2,000 connections held open together, each echoed, then closed;
  600 websocket clients (aiohttp, else a line protocol) held open, messaging periodically;
  the 8 MiB write+drain-then-read client;
  400 clients at once against a backlog of 16: all served, no reset.

The websocket body also runs on stock asyncio over 127.0.0.1, so a difference from
asyncio shows up as a failure. No timing is asserted; the timeouts only catch hangs.
"""

import asyncio
import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import time

import pytest

from _netns import IS_ROOT, netns, unique
from _stack_peer import skip_if_enosys

pytestmark = pytest.mark.timeout(240)

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.join(HERE, "apps", "load_clients.py")
NET = 100 + os.getpid() % 50
STACK_IP = f"10.{NET}.11.2"
HOST_IP = f"10.{NET}.11.1"
PORT = 8090
ROOT_REASON = "needs root: creates a network namespace and a tap"


@contextlib.contextmanager
def tap_loop(**stack_options):
    """(loop, host, argv prefix that runs a command in the clients' namespace, stack)."""
    from aiorusty.loop import RustyEventLoop
    from aiorusty.nic import open_device
    from aiorusty.nic._host import configure_host_side
    from aiorusty.tcp import Stack

    if not IS_ROOT:
        pytest.skip(ROOT_REASON)
    name = unique("rld")
    with netns() as ns:
        try:
            dev = open_device(f"tap:{name}")
        except OSError as e:
            skip_if_enosys(e, "tap")
        stack = Stack(seed=5, **stack_options)          # default settings
        try:
            stack.add_interface(dev, ip=f"{STACK_IP}/24")
            configure_host_side(dev, host=ipaddress.IPv4Interface(f"{HOST_IP}/24"), netns=ns)
            loop = RustyEventLoop(interfaces=(), stack=[stack])
            try:
                yield loop, STACK_IP, ["ip", "netns", "exec", ns], stack
            finally:
                settle(loop, stack)
                loop.close()
        finally:
            stack.close()
            dev.close()


def settle(loop, stack):
    """Let the server's handlers see their clients' FINs (the client process may exit
    first), then end what is left as asyncio.run would, so no coroutine outlives the loop."""
    async def drain():
        deadline = time.monotonic() + 10
        while stack.stats()["tcp_conns"] and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        pending = asyncio.all_tasks() - {asyncio.current_task()}
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    loop.run_until_complete(drain())


@contextlib.contextmanager
def kernel_loop():
    loop = asyncio.SelectorEventLoop()
    try:
        yield loop, "127.0.0.1", [], None
    finally:
        loop.close()


async def clients(prefix, mode, host, n, timeout=150):
    """Run load_clients.py to completion without blocking the loop; its JSON report."""
    proc = subprocess.Popen(prefix + [sys.executable, CLIENTS, mode, host, str(PORT), str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"{mode} clients still running after {timeout} s"
            await asyncio.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 0 and out.strip(), f"{mode} clients exited {proc.returncode}: {err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


async def echo(reader, writer):
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()


def run(loop, coro, timeout=200):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def all_served(n):
    return {"connected": n, "answered": n, "errors": {}}


def no_resets(stack):
    if stack is not None:
        st = stack.stats()
        assert st["tcp_rst_tx"] == 0, {k: v for k, v in st.items() if k.startswith("tcp_") and v}


def test_2000_kernel_clients_held_open():
    with tap_loop() as (loop, host, prefix, stack):
        async def main():
            server = await asyncio.start_server(echo, host, PORT, backlog=2048)
            try:
                return await clients(prefix, "hold", host, 2000)
            finally:
                server.close()
                await server.wait_closed()
        assert run(loop, main()) == all_served(2000), stack.stats()
        no_resets(stack)


def test_8mib_write_drain_then_read_from_kernel():
    with tap_loop() as (loop, host, prefix, stack):
        async def main():
            server = await asyncio.start_server(echo, host, PORT)
            try:
                return await clients(prefix, "big", host, 1, timeout=60)
            finally:
                server.close()
                await server.wait_closed()
        assert run(loop, main()) == all_served(1)


BACKLOG = 16


def test_accept_queue_overflow_falls_back_to_cookies():
    """400 clients at once against a backlog of 16: past the SYN queue the SYNs
    get cookies; handshakes completed on a full accept queue are
    dropped and the clients' retransmissions complete them once the server has
    accepted. All served, never a reset (as Linux, whose full accept queue drops)."""
    with tap_loop() as (loop, host, prefix, stack):
        async def main():
            server = await asyncio.start_server(echo, host, PORT, backlog=BACKLOG)
            try:
                return await clients(prefix, "burst", host, 400)
            finally:
                server.close()
                await server.wait_closed()
        assert run(loop, main()) == all_served(400), stack.stats()
        no_resets(stack)
        # Whether a burst fills the queues depends on how fast this loop accepts; the
        # scripted test_handshake.py drives the cookie and overflow paths exactly.


def ws_server(served):
    """(start, stop): an aiohttp web app echoing websocket text messages on /ws, or,
    without aiohttp, the streams echo server (the clients then speak lines)."""
    try:
        import aiohttp
        from aiohttp import web
    except ImportError:
        holder = {}

        async def handle(reader, writer):
            await echo(reader, writer)
            served.append(1)

        async def start(host):
            holder["server"] = await asyncio.start_server(handle, host, PORT, backlog=1024)
            return "lines"

        async def stop():
            holder["server"].close()
            await holder["server"].wait_closed()
        return start, stop

    async def ws_echo(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
        served.append(1)
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_echo)
    runner = web.AppRunner(app)

    async def start(host):
        await runner.setup()
        await web.TCPSite(runner, host, PORT, backlog=1024).start()
        return "ws"

    return start, runner.cleanup


@pytest.mark.parametrize("where", ["aiorusty_tap", "asyncio_kernel"])
def test_600_websocket_clients_held_open(where):
    with (tap_loop() if where == "aiorusty_tap" else kernel_loop()) as (loop, host, prefix, stack):
        served = []

        async def main():
            start, stop = ws_server(served)
            mode = await start(host)
            try:
                return await clients(prefix, mode, host, 600)
            finally:
                await stop()
        assert run(loop, main()) == all_served(600)
        assert len(served) == 600
        no_resets(stack)


BANNER_SERVER = r"""
import asyncio, sys
class Banner(asyncio.Protocol):
    def connection_made(self, transport):
        transport.write(b"220 hello\r\n")
        transport.close()
async def main():
    await asyncio.get_running_loop().create_server(Banner, sys.argv[1], int(sys.argv[2]), backlog=1024)
    print("ready", flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""


class _Recorder(asyncio.Protocol):
    def __init__(self, loop):
        self.events, self.lost = [], loop.create_future()

    def connection_made(self, transport):
        self.events.append("made")

    def data_received(self, data):
        self.events.append("data")

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.lost.set_result(exc)


def test_connection_made_first_against_a_kernel_banner_server():
    """A kernel server in the namespace writes a banner and closes as it accepts: each of
    200 client connections on the stack sees connection_made before data and EOF (the
    SYN-ACK, the banner and the FIN can arrive together)."""
    with tap_loop() as (loop, host, prefix, stack):
        proc = subprocess.Popen(prefix + [sys.executable, "-c", BANNER_SERVER, HOST_IP, str(PORT)],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"

            async def main():
                conns = await asyncio.gather(*(loop.create_connection(lambda: _Recorder(loop), HOST_IP, PORT)
                                               for _ in range(200)))
                for _, p in conns:
                    await p.lost
                return [p.events for _, p in conns]
            orders = run(loop, main(), timeout=60)
        finally:
            proc.kill()
            proc.wait()
        assert [o for o in orders if o != ["made", "data", "eof"]][:3] == []
