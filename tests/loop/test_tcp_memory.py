"""TCP memory through the loop: buffers grow on a long fat path and come back after the
burst, and the stack-wide limits refuse new connections cleanly when exhausted.

Growth: two stacks over an shm link with 20 ms of added delay each way and a rate limit
(the fault injector, interface spec keys delay= and rate=), one 16 MiB upload. While it
runs the receiver's window must be auto-tuned past its initial 64 KiB (tcp_rcvbuf); once
the application has read everything, the rings are released while the connection stays
open. Throughput is not asserted.

Limits: the client's stack with few control blocks (max_tcp_conns) or little memory
(tcp_mem). Connections past the limit fail in create_connection with EMFILE / ENOBUFS,
the loop logs one warning on "aiorusty.stack" naming the limit, the refusal counters
move, and the connections already open keep carrying data intact.
"""

import asyncio
import errno
import hashlib
import os

import pytest

from _netns import unique

from ._base import RustyBase, echo

pytestmark = pytest.mark.timeout(120)

INITIAL_WINDOW = 64 * 1024
BULK = 16 * 2**20


class TestBufferGrowth_Rusty(RustyBase):
    HOST_STACK = {"tcp_rcvbuf": INITIAL_WINDOW}
    PEER_STACK = {"tcp_rcvbuf": INITIAL_WINDOW}

    def new_devices(self):
        from aiorusty.nic import open_device
        name = unique("rlfp")
        return open_device(f"shm:{name},delay=20ms,rate=400mbit,seed=1"), open_device(f"shm:{name}")

    def test_window_grows_on_long_fat_path_and_memory_returns(self):
        server_stack, client_stack = self.stacks
        peak = {"rcv_wnd": 0, "client_bytes": 0}
        read_all = asyncio.Event()

        async def handle(reader, writer):
            handle_ = writer.transport._handle
            sampler = asyncio.ensure_future(sample(handle_))
            digest = hashlib.sha256()
            n = 0
            while n < BULK:
                chunk = await reader.read(2**20)
                self.assertTrue(chunk, f"EOF after {n} bytes")
                digest.update(chunk)
                n += len(chunk)
            sampler.cancel()
            read_all.set()
            writer.write(digest.hexdigest().encode() + b"\n")
            await writer.drain()
            await reader.read()
            writer.close()
            await writer.wait_closed()

        async def sample(handle_):
            while True:
                peak["rcv_wnd"] = max(peak["rcv_wnd"], server_stack.tcp_info(handle_)["rcv_wnd"])
                peak["client_bytes"] = max(peak["client_bytes"], client_stack.stats()["tcp_buffer_bytes"])
                await asyncio.sleep(0.005)

        async def main():
            server = await asyncio.start_server(handle, self.HOST, 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(self.HOST, port)
            payload = os.urandom(BULK)
            writer.write(payload)
            await writer.drain()
            self.assertEqual(await reader.readline(), hashlib.sha256(payload).hexdigest().encode() + b"\n")
            await read_all.wait()
            # Both sides have read everything and every byte is acknowledged; the
            # connection stays open. Give the last ACKs a few round trips to arrive.
            for _ in range(100):
                held = [st.stats()["tcp_buffer_bytes"] for st in self.stacks]
                if max(held) < INITIAL_WINDOW:
                    break
                await asyncio.sleep(0.02)
            self.assertLess(max(held), INITIAL_WINDOW,
                            f"rings still held after the burst was read (server, client): {held}")
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()

        self.run_loop(main(), timeout=90)
        self.assertGreater(peak["rcv_wnd"], INITIAL_WINDOW, f"receive window never auto-tuned: {peak}")
        # The server's ring is not sampled: its reader drains it every tick, so it is
        # back in the cache whenever the sampler runs; its window is what grew.
        self.assertGreater(peak["client_bytes"], INITIAL_WINDOW, peak)
        self.assertGreater(server_stack.stats()["tcp_rcvbuf_grown"], 0)
        for _ in range(300):
            if not any(st.stats()["tcp_conns"] for st in self.stacks):
                break
            self.loop.run_until_complete(asyncio.sleep(0.01))
        self.assertEqual([st.stats()["tcp_buffer_bytes"] for st in self.stacks], [0, 0])


class _LimitTests:
    """One body for both limits: LIMIT names the option, ERRNO what the application sees,
    COUNTER the stats counter a refusal moves."""

    LIMIT = ERRNO = COUNTER = None

    def test_refused_past_the_limit_and_open_connections_keep_working(self):
        async def main():
            server = await asyncio.start_server(echo, self.HOST, 0)
            port = server.sockets[0].getsockname()[1]
            opened, refusals = [], []
            with self.assertLogs("aiorusty.stack", "WARNING") as logs:
                for _ in range(200):
                    try:
                        opened.append(await asyncio.open_connection(self.HOST, port))
                    except OSError as e:
                        refusals.append(e)
                        if len(refusals) == 5:
                            break
            self.assertGreaterEqual(len(opened), 2, f"refused before two connections: {refusals[:1]!r}")
            self.assertEqual(len(refusals), 5, f"{len(opened)} connections opened under {self.LIMIT}, none refused")
            self.assertEqual({e.errno for e in refusals}, {self.ERRNO}, refusals)
            warnings = [r for r in logs.records if r.levelname == "WARNING"]
            self.assertEqual(len(warnings), 1, [r.getMessage() for r in warnings])
            self.assertIn(self.LIMIT, warnings[0].getMessage())
            self.assertGreaterEqual(self.stacks[1].stats()[self.COUNTER], 5)
            for i, (reader, writer) in enumerate(opened):
                data = os.urandom(256 * 1024)
                writer.write(data)
                got = await reader.readexactly(len(data))
                self.assertEqual(got, data, f"connection {i} of {len(opened)} after the refusals")
            for _, writer in opened:
                writer.close()
                await writer.wait_closed()
            server.close()
            await server.wait_closed()
        self.run_loop(main(), timeout=60)


class TestConnLimit_Rusty(_LimitTests, RustyBase):
    LIMIT, ERRNO, COUNTER = "max_tcp_conns", errno.EMFILE, "tcp_conns_refused"
    PEER_STACK = {"max_tcp_conns": 8}


class TestMemLimit_Rusty(_LimitTests, RustyBase):
    LIMIT, ERRNO, COUNTER = "tcp_mem", errno.ENOBUFS, "tcp_mem_refused"
    PEER_STACK = {"tcp_mem": 2**20}
