"""A write made outside the loop's batch of stack events leaves at once, as a kernel socket's send() does.

The writer hands a reply to its transport and then blocks without returning to the
loop (a synchronous call, a thread join): the peer, in its own thread with its own
loop, must get the bytes while the writer is blocked. The writer blocks on an
Event that the peer sets when the reply has arrived, bounded by BLOCK_S, so the
assertion is about order (arrived during the block), never about a duration.

Writers: an asyncio streams handler (a task; write and writelines), call_soon
from data_received, a timer, call_soon_threadsafe from another thread; write then write_eof (the FIN
too), write then close; a UDP sendto from call_soon. One body runs on stock
asyncio (kernel loopback, the peer a second asyncio loop) and on aiorusty (the
writer's stack and the peer's stack joined by a shm link, each polled by its own
loop in its own thread: no kernel in the path, no root).

Inside the batch (data_received itself) a write waits for the tick's output step
that follows the batch, as documented in aiorusty/_selector.py ("Writes at once"):
TestWriteBatching_Rusty checks that writes made there still leave as one
segment, and the same writes made from call_soon as one segment each.
"""

import asyncio
import os
import threading
import time
import unittest

from ._base import AsyncioBase, RustyBase, have_tcp

BLOCK_S = 3.0                           # the most a writer stays blocked (a failure costs this)
REQUEST = b"ping\n"
REPLY = b"pong\n"


class Peer:
    """A client in its own thread and loop: sends REQUEST, sets `got` once the reply
    (and, with eof=True, the FIN after it) has arrived."""

    def __init__(self, loop, host, port, eof=False, udp=False):
        self.loop, self.host, self.port, self.eof, self.udp = loop, host, port, eof, udp
        self.got = threading.Event()
        self.data = None
        self.error = None
        self.thread = threading.Thread(target=self._run, name="write-now peer")

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        try:
            self.loop.run_until_complete(asyncio.wait_for(self._udp() if self.udp else self._tcp(), 15))
        except BaseException as exc:        # reported by join()
            self.error = exc
        finally:
            self.got.set()                  # never leave a writer blocked on a dead peer

    async def _tcp(self):
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(REQUEST)
        if self.eof:
            self.data = await reader.read()         # the reply, then b"" at the FIN
        else:
            self.data = await reader.readexactly(len(REPLY))
        self.got.set()
        writer.close()
        await writer.wait_closed()

    async def _udp(self):
        loop = asyncio.get_running_loop()
        reply = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                if not reply.done():
                    reply.set_result(data)
        tr, _ = await loop.create_datagram_endpoint(Client, remote_addr=(self.host, self.port))
        tr.sendto(REQUEST)
        self.data = await reply
        self.got.set()
        tr.close()
        await asyncio.sleep(0)

    def join(self):
        self.thread.join(20)
        if self.error is not None:
            raise self.error


class _TestWriteNow:
    def new_peer_loop(self):
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        self.peer_loop = self.new_peer_loop()
        self.blocks = []                # for each block: whether the reply arrived during it

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            self.peer_loop.close()

    def block_until(self, peer):
        """Block this thread (the loop's) until the peer has the reply, at most BLOCK_S."""
        self.blocks.append(peer.got.wait(BLOCK_S))

    def served(self, serve, **peer_options):
        """Run serve(on_request) -> server (a started server; on_request(write) is what
        the server calls with its reply function), a peer against it; the peer's data."""
        peer = None

        def on_request(reply):
            reply(REPLY)
            self.block_until(peer)

        async def main():
            nonlocal peer
            server = await serve(on_request)
            port = server.get_extra_info("sockname")[1] if hasattr(server, "get_extra_info") \
                else server.sockets[0].getsockname()[1]
            peer = Peer(self.peer_loop, self.HOST, port, **peer_options).start()
            try:
                while peer.thread.is_alive():
                    await asyncio.sleep(0.01)
            finally:
                server.close()
                if hasattr(server, "wait_closed"):
                    await server.wait_closed()
        self.run_loop(main(), timeout=30)
        peer.join()
        self.assertEqual(self.blocks, [True], "the peer got the reply only after the writer's block ended")
        return peer.data

    async def protocol_server(self, on_request, schedule):
        """A Protocol server whose data_received hands the reply to `schedule` (outside the batch)."""
        loop = self.loop

        class Server(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                schedule(lambda: on_request(self.transport.write))

            def eof_received(self):
                self.transport.close()
        return await loop.create_server(Server, self.HOST, 0)

    def test_streams_handler_writes_then_blocks(self):
        async def serve(on_request):
            async def handle(reader, writer):
                await reader.readline()
                on_request(writer.write)
                await reader.read()
                writer.close()
            return await asyncio.start_server(handle, self.HOST, 0)
        self.assertEqual(self.served(serve), REPLY)

    def test_call_soon_writes_then_blocks(self):
        self.assertEqual(self.served(lambda f: self.protocol_server(f, self.loop.call_soon)), REPLY)

    def test_timer_writes_then_blocks(self):
        self.assertEqual(self.served(lambda f: self.protocol_server(f, lambda cb: self.loop.call_later(0.01, cb))),
                         REPLY)

    def test_threadsafe_callback_writes_then_blocks(self):
        def from_thread(cb):
            t = threading.Thread(target=self.loop.call_soon_threadsafe, args=(cb,))
            t.start()
            t.join()
        self.assertEqual(self.served(lambda f: self.protocol_server(f, from_thread)), REPLY)

    def _closing_server(self, finish):
        async def serve(on_request):
            async def handle(reader, writer):
                await reader.readline()

                def reply(data):
                    writer.write(data)
                    finish(writer)
                on_request(reply)
                await reader.read()
                writer.close()
            return await asyncio.start_server(handle, self.HOST, 0)
        return serve

    def test_streams_handler_writelines_then_blocks(self):
        async def serve(on_request):
            async def handle(reader, writer):
                await reader.readline()
                on_request(lambda reply: writer.writelines([reply[:2], reply[2:]]))
                await reader.read()
                writer.close()
            return await asyncio.start_server(handle, self.HOST, 0)
        self.assertEqual(self.served(serve), REPLY)

    def test_write_then_write_eof_then_block(self):
        self.assertEqual(self.served(self._closing_server(lambda w: w.write_eof()), eof=True), REPLY)

    def test_write_then_close_then_block(self):
        # The reply only: asyncio closes the socket (FIN) after the callback, in connection_lost.
        self.assertEqual(self.served(self._closing_server(lambda w: w.close())), REPLY)

    def test_udp_sendto_then_block(self):
        async def serve(on_request):
            loop = self.loop

            class Server(asyncio.DatagramProtocol):
                def connection_made(self, transport):
                    self.transport = transport

                def datagram_received(self, data, addr):
                    loop.call_soon(on_request, lambda reply: self.transport.sendto(reply, addr))
            tr, _ = await loop.create_datagram_endpoint(Server, local_addr=(self.HOST, 0))
            return tr
        self.assertEqual(self.served(serve, udp=True), REPLY)


class TestWriteNow_AIO(_TestWriteNow, AsyncioBase):
    def new_peer_loop(self):
        return asyncio.SelectorEventLoop()


@unittest.skipUnless(have_tcp(), "aiorusty.tcp.Stack has no TCP yet")
class TestWriteNow_Rusty(_TestWriteNow, RustyBase):
    """The writer's stack (HOST) and the peer's (PEER_HOST) on the two ends of a shm link,
    each polled by its own loop: the peer runs while the writer's thread is blocked."""

    def new_devices(self):
        from aiorusty.nic import open_device
        name = f"rwnow{os.getpid()}{id(self) % 10000}"
        return [open_device(f"shm:{name}"), open_device(f"shm:{name}")]

    def new_loop(self):
        from aiorusty.loop import RustyEventLoop
        RustyBase.new_loop(self)        # both stacks, one per end of the link (closed by RustyBase)
        return RustyEventLoop(interfaces=(), stack=[self.stacks[0]])

    def new_peer_loop(self):
        from aiorusty.loop import RustyEventLoop
        return RustyEventLoop(interfaces=(), stack=[self.stacks[1]])

    def check_leaks(self):
        # The peer's thread has ended: its loop runs here, between the writer's, so the
        # peer's side of each connection can finish (TIME-WAIT) before RustyBase counts.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(st.stats()["tcp_conns"] for st in self.stacks):
            self.peer_loop.run_until_complete(asyncio.sleep(0.005))
            self.loop.run_until_complete(asyncio.sleep(0.005))
        super().check_leaks()


@unittest.skipUnless(have_tcp(), "aiorusty.tcp.Stack has no TCP yet")
class TestWriteBatching_Rusty(RustyBase):
    """What the rule keeps: writes inside the batch leave together, one segment for the
    lot; the same writes from call_soon leave one segment each (counted in frames)."""

    PIECES = 16

    def frames_for_replies(self, schedule):
        loop, pieces = self.loop, self.PIECES

        class Server(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                schedule(lambda: [self.transport.write(b"%02d" % i) for i in range(pieces)])

        async def main():
            server = await loop.create_server(Server, self.HOST, 0)
            reader, writer = await asyncio.open_connection(self.HOST, server.sockets[0].getsockname()[1])
            await asyncio.sleep(0.05)           # the handshake's last ACK is in
            before = self.stacks[0].stats()["eth_tx_frames"]
            writer.write(REQUEST)
            got = await reader.readexactly(2 * pieces)
            sent = self.stacks[0].stats()["eth_tx_frames"] - before
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            self.assertEqual(got, b"".join(b"%02d" % i for i in range(pieces)))
            return sent
        return self.run_loop(main())

    def test_writes_inside_the_batch_leave_in_one_segment(self):
        self.assertEqual(self.frames_for_replies(lambda cb: cb()), 1)

    def test_writes_outside_the_batch_leave_one_segment_each(self):
        self.assertEqual(self.frames_for_replies(self.loop.call_soon), self.PIECES)


if __name__ == "__main__":
    unittest.main()
