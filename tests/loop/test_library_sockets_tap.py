"""Libraries that make their own sockets, on the stack over a tap, with Linux peers (root only).

The loop under test runs in this process on a stack whose only interface is a tap
(test_tap_load.tap_loop); the tap's kernel end and the Linux peers live in a network
namespace the test creates. The switch (use_stack_sockets) is on, as a user turns it on
with AIORUSTY_SOCKETS=1:

  aiohttp's ClientSession (its sockets come from aiohappyeyeballs) GETs from a Linux
  HTTP server, and the stack's counters show the connections were its own;
  hypercorn serves an ASGI app on the stack's address to curl;
  anyio's TCP listener and connect_tcp carry streams to and from Linux peers.
"""

import asyncio
import os
import subprocess
import sys
import time

import pytest

from _netns import need_tool
from aiorusty.sockets import use_stack_sockets

from .test_tap_load import HOST_IP, STACK_IP, tap_loop

pytestmark = pytest.mark.timeout(120)

PORT = 8091


@pytest.fixture
def switch_on():
    use_stack_sockets(True)
    yield
    use_stack_sockets(False)


async def wait_proc(proc, timeout=60):
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, f"{proc.args} still running after {timeout} s"
        await asyncio.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}: {err[-2000:]}"
    return out


def test_aiohttp_client_session_crosses_the_stack(switch_on, tmp_path):
    aiohttp = pytest.importorskip("aiohttp")
    (tmp_path / "hello.txt").write_bytes(b"hello from linux\n" * 1000)
    with tap_loop() as (loop, host, prefix, stack):
        server = subprocess.Popen(prefix + [sys.executable, "-m", "http.server", "--bind", HOST_IP, str(PORT),
                                            "--directory", str(tmp_path)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            async def main():
                opens = stack.stats()["tcp_active_opens"]
                url = f"http://{HOST_IP}:{PORT}/hello.txt"
                async with aiohttp.ClientSession() as session:
                    deadline = time.monotonic() + 20
                    while True:                 # until the server in the namespace listens
                        try:
                            async with session.get(url) as r:
                                body = await r.read()
                                break
                        except aiohttp.ClientConnectionError:
                            assert time.monotonic() < deadline, "the Linux HTTP server never answered"
                            await asyncio.sleep(0.2)
                    for _ in range(10):
                        async with session.get(url, headers={"Connection": "close"}) as r:
                            assert r.status == 200
                            assert await r.read() == body
                assert body == b"hello from linux\n" * 1000
                return stack.stats()["tcp_active_opens"] - opens

            opened = loop.run_until_complete(asyncio.wait_for(main(), 60))
            assert opened >= 11, f"only {opened} connections opened on the stack"
        finally:
            server.kill()
            server.wait()


def test_hypercorn_serves_asgi_on_the_stack(switch_on):
    pytest.importorskip("hypercorn")
    need_tool("curl")
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": f"hypercorn {scope['path']}".encode()})

    with tap_loop() as (loop, host, prefix, stack):
        async def main():
            config = Config()
            config.bind = [f"{STACK_IP}:{PORT}"]
            config.accesslog = None
            stop = asyncio.Event()
            serving = asyncio.ensure_future(serve(app, config, shutdown_trigger=stop.wait))
            passive = stack.stats()["tcp_passive_opens"]
            try:
                for i in range(20):
                    curl = subprocess.Popen(prefix + ["curl", "-sS", "--retry", "5", "--retry-connrefused",
                                                      "--max-time", "20", f"http://{STACK_IP}:{PORT}/r{i}"],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    assert await wait_proc(curl) == f"hypercorn /r{i}".encode()
            finally:
                stop.set()
                await asyncio.wait_for(serving, 20)
            return stack.stats()["tcp_passive_opens"] - passive

        served = loop.run_until_complete(asyncio.wait_for(main(), 90))
        assert served >= 20


def test_anyio_tcp_streams_on_the_stack(switch_on):
    anyio = pytest.importorskip("anyio")
    peer = ("import socket, sys\n"
            "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)\n"
            "s.sendall(b'from linux\\n'); print(s.makefile().readline().strip())\n")
    echo = ("import socket, sys\n"
            "ls = socket.create_server((sys.argv[1], int(sys.argv[2]))); print('ready', flush=True)\n"
            "c, _ = ls.accept(); c.sendall(c.recv(100).upper()); c.close()\n")

    with tap_loop() as (loop, host, prefix, stack):
        async def main():
            # A listener on the stack's address, a Linux client.
            listener = await anyio.create_tcp_listener(local_host=STACK_IP, local_port=PORT)
            assert all(s.extra(anyio.abc.SocketAttribute.raw_socket).on_stack for s in listener.listeners)
            client = subprocess.Popen(prefix + [sys.executable, "-c", peer, STACK_IP, str(PORT)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            async with listener:
                stream = await listener.listeners[0].accept()
                async with stream:
                    line = await stream.receive(100)
                    await stream.send(line.upper())
            assert (await wait_proc(client)).strip() == b"FROM LINUX"
            # connect_tcp from the stack to a Linux server.
            server = subprocess.Popen(prefix + [sys.executable, "-c", echo, HOST_IP, str(PORT + 1)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                assert await asyncio.to_thread(server.stdout.readline) == "ready\n"
                opens = stack.stats()["tcp_active_opens"]
                async with await anyio.connect_tcp(HOST_IP, PORT + 1) as stream:
                    await stream.send(b"to linux")
                    assert await stream.receive(100) == b"TO LINUX"
                assert stack.stats()["tcp_active_opens"] == opens + 1
            finally:
                server.kill()
                server.communicate()

        loop.run_until_complete(asyncio.wait_for(main(), 60))
