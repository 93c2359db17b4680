"""TCP transports and servers: one body on stock asyncio (kernel loopback) and aiorusty
(two stacks over an in-process cable)."""

import asyncio
import contextvars
import errno
import hashlib
import os
import socket
import sys
import unittest

from aiorusty.transports.stream import StackStreamTransport
from aiorusty.transports.zerocopy import ViewProtocol

from aiorusty.loop import RustyEventLoop

from ._base import AsyncioBase, RustyBase, have_tcp
from .test_udp import Recorder

cv = contextvars.ContextVar("cv", default="unset")


class Proto(asyncio.Protocol):
    """Records callbacks; data in self.data; futures for made/eof/lost."""

    def __init__(self, loop, keep_open=False):
        self.events = []
        self.data = bytearray()
        self.keep_open = keep_open
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.more = asyncio.Event()
        self.contexts = []

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport
        self.contexts.append(cv.get())
        self.made.set_result(transport)

    def data_received(self, data):
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.contexts.append(cv.get())
        self.data += data
        self.more.set()

    async def wait_bytes(self, n):
        while len(self.data) < n:
            self.more.clear()
            await self.more.wait()

    def eof_received(self):
        self.events.append("eof")
        self.eof.set_result(None)
        return self.keep_open

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


class Writer(Proto):
    """Also records pause_writing/resume_writing."""

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")


class Buffered(asyncio.BufferedProtocol):
    def __init__(self, loop):
        self.buf = bytearray(7000)           # odd size: reads straddle it
        self.data = bytearray()
        self.lost = loop.create_future()
        self.eofs = 0

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        self.data += self.buf[:nbytes]

    def eof_received(self):
        self.eofs += 1
        return False

    def connection_lost(self, exc):
        self.lost.set_result(exc)


class _TCPHelpers:
    def _check(self, transport):
        self.assertEqual(isinstance(transport, StackStreamTransport), self.ON_STACK)

    async def _pair(self, server_proto=None, client_proto=None):
        """A server with one accepted connection: (server, sproto, ctransport, cproto)."""
        accepted = self.loop.create_future()

        def factory():
            p = server_proto() if server_proto else Proto(self.loop)
            if not accepted.done():
                accepted.set_result(p)
            return p
        server = await self.loop.create_server(factory, self.HOST, 0)
        port = server.sockets[0].getsockname()[1]
        ct, cp = await self.loop.create_connection(client_proto or (lambda: Proto(self.loop)), self.HOST, port)
        sp = await accepted
        if hasattr(sp, "made"):
            await sp.made
        self._check(ct)
        return server, sp, ct, cp

    async def _finish(self, server, *protos):
        server.close()
        await server.wait_closed() if sys.version_info < (3, 12) else None
        for p in protos:
            if not p.lost.done():
                p.transport.close()
            await p.lost
        if sys.version_info >= (3, 12):
            await server.wait_closed()



class _TestTCP(_TCPHelpers):
    def test_streams_echo_and_5mib_sha256(self):
        async def handle(reader, writer):
            while line := await reader.readline():
                writer.write(line.upper())
                if line == b"BIG\n":
                    break
            digest = hashlib.sha256()
            n = 0
            while n < 5 * 2**20:
                chunk = await reader.read(65536)
                self.assertTrue(chunk)
                digest.update(chunk)
                n += len(chunk)
            writer.write(digest.hexdigest().encode() + b"\n")
            writer.write(os.urandom(0) + b"".join([b"%08d" % i for i in range(5 * 2**20 // 8)]))
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        async def main():
            server = await asyncio.start_server(handle, self.HOST, 0)
            port = server.sockets[0].getsockname()[1]
            self.assertNotEqual(port, 0)
            self.assertTrue(server.is_serving())
            reader, writer = await asyncio.open_connection(self.HOST, port)
            self._check(writer.transport)
            self.assertEqual(writer.get_extra_info("peername"), (self.HOST, port))
            for i in range(10):
                writer.write(b"line %d\n" % i)
            self.assertEqual([await reader.readline() for _ in range(10)], [b"LINE %d\n" % i for i in range(10)])
            writer.write(b"BIG\n")
            self.assertEqual(await reader.readline(), b"BIG\n")
            payload = os.urandom(5 * 2**20)
            writer.write(payload)
            await writer.drain()
            self.assertEqual(await reader.readline(), hashlib.sha256(payload).hexdigest().encode() + b"\n")
            down = await reader.read()                  # to EOF
            self.assertEqual(hashlib.sha256(down).hexdigest(),
                             hashlib.sha256(b"".join([b"%08d" % i for i in range(5 * 2**20 // 8)])).hexdigest())
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
        self.run_loop(main(), timeout=30)

    def test_protocol_callbacks_once_and_context(self):
        async def main():
            token = cv.set("server")
            server = None
            try:
                accepted = self.loop.create_future()

                def factory():
                    p = Proto(self.loop)
                    accepted.set_result(p)
                    return p
                server = await self.loop.create_server(factory, self.HOST, 0)
            finally:
                cv.reset(token)
            token = cv.set("client")
            try:
                ct, cp = await self.loop.create_connection(
                    lambda: Proto(self.loop), self.HOST, server.sockets[0].getsockname()[1])
            finally:
                cv.reset(token)
            sp = await accepted
            ct.write(b"to server")
            await sp.wait_bytes(9)
            sp.transport.write(b"to client")
            await cp.wait_bytes(9)
            ct.close()
            ct.close()
            self.assertTrue(ct.is_closing())
            self.assertIsNone(await cp.lost)
            await sp.eof
            self.assertIsNone(await sp.lost)
            self.assertEqual(cp.events, ["made", "data", "lost"])
            self.assertEqual(sp.events, ["made", "data", "eof", "lost"])
            self.assertEqual(set(cp.contexts), {"client"})
            self.assertEqual(set(sp.contexts), {"server"})
            server.close()
            await server.wait_closed()
        self.run_loop(main())

    def test_eof_received_keep_open_and_write_eof(self):
        async def main():
            server, sp, ct, cp = await self._pair(server_proto=lambda: Proto(self.loop, keep_open=True))
            self.assertTrue(ct.can_write_eof())
            ct.write(b"request")
            ct.write_eof()
            ct.write_eof()
            with self.assertRaises(RuntimeError):
                ct.write(b"more")
            await sp.eof
            self.assertEqual(bytes(sp.data), b"request")
            self.assertFalse(sp.transport.is_closing())      # eof_received returned True
            sp.transport.write(b"response after half-close")
            sp.transport.close()
            await cp.eof                                     # client's eof_received -> False -> close
            self.assertEqual(bytes(cp.data), b"response after half-close")
            self.assertIsNone(await cp.lost)
            self.assertIsNone(await sp.lost)
            self.assertEqual(cp.events, ["made", "data", "eof", "lost"])
            await self._finish(server)
        self.run_loop(main())

    def test_write_types_and_writelines(self):
        async def main():
            server, sp, ct, cp = await self._pair()
            with self.assertRaises(TypeError):
                ct.write("text")
            ba = bytearray(b"bytearray|")
            ct.write(b"bytes|")
            ct.write(ba)
            ba[:] = b"XXXXXXXXX|"                           # mutated after write: must not matter
            ct.write(memoryview(b"..memoryview|")[2:])
            ct.writelines([b"a", bytearray(b"b"), memoryview(b"c|")])
            ct.write(b"")
            expect = b"bytes|bytearray|memoryview|abc|"
            await sp.wait_bytes(len(expect))
            self.assertEqual(bytes(sp.data), expect)
            await self._finish(server, cp, sp)
        self.run_loop(main())

    def test_close_flushes_then_fin(self):
        async def main():
            server, sp, ct, cp = await self._pair()
            payload = os.urandom(2 * 2**20)
            ct.write(payload)
            ct.close()
            self.assertTrue(ct.is_closing())
            await sp.eof
            self.assertEqual(bytes(sp.data), payload)
            await cp.lost
            await self._finish(server, sp)
        self.run_loop(main(), timeout=20)

    def test_pause_resume_reading(self):
        async def main():
            server, sp, ct, cp = await self._pair()
            st = sp.transport
            self.assertTrue(st.is_reading())
            st.pause_reading()
            st.pause_reading()
            self.assertFalse(st.is_reading())
            ct.write(b"while paused")
            for _ in range(20):
                await asyncio.sleep(0.005)
            self.assertEqual(bytes(sp.data), b"")
            st.resume_reading()
            st.resume_reading()
            self.assertTrue(st.is_reading())
            await sp.wait_bytes(12)
            self.assertEqual(bytes(sp.data), b"while paused")
            st.close()
            st.pause_reading()                               # allowed after close
            st.resume_reading()
            self.assertFalse(st.is_reading())
            await self._finish(server, cp, sp)
        self.run_loop(main())

    def test_write_flow_control_alternates(self):
        async def main():
            server, sp, ct, cp = await self._pair(client_proto=lambda: Writer(self.loop))
            ct.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
            self.assertEqual(ct.get_write_buffer_limits(), (16 * 1024, 64 * 1024))
            sp.transport.pause_reading()
            chunk = b"z" * 65536
            for _ in range(200):                             # 12.5 MiB: more than any socket buffer
                ct.write(chunk)
            await asyncio.sleep(0.05)
            self.assertIn("pause", cp.events)
            self.assertGreater(ct.get_write_buffer_size(), 0)
            sp.transport.resume_reading()
            await sp.wait_bytes(200 * 65536)
            for _ in range(10):
                await asyncio.sleep(0.005)
            self.assertEqual(ct.get_write_buffer_size(), 0)
            flow = [e for e in cp.events if e in ("pause", "resume")]
            self.assertEqual(flow[:1], ["pause"])
            self.assertEqual(flow[-1], "resume")
            self.assertTrue(all(a != b for a, b in zip(flow, flow[1:])), flow)
            await self._finish(server, cp, sp)
        self.run_loop(main(), timeout=30)

    def test_buffered_protocol(self):
        async def main():
            server, sp, ct, cp = await self._pair(server_proto=lambda: Buffered(self.loop))
            payload = os.urandom(2**20 + 123)
            ct.write(payload)
            ct.write_eof()
            self.assertIsNone(await sp.lost)                 # eof_received -> False -> close
            self.assertEqual(bytes(sp.data), payload)
            self.assertEqual(sp.eofs, 1)
            await self._finish(server, cp)
        self.run_loop(main(), timeout=20)

    def test_connection_refused(self):
        async def main():
            server = await self.loop.create_server(lambda: Proto(self.loop), self.HOST, 0)
            port = server.sockets[0].getsockname()[1]
            server.close()
            await server.wait_closed()
            with self.assertRaises(ConnectionRefusedError):
                await self.loop.create_connection(lambda: Proto(self.loop), self.HOST, port)
        self.run_loop(main())

    def test_local_addr_held_by_a_listener_is_in_use(self):
        # CPython's test_events test_create_connection_local_addr_in_use: local_addr is a
        # bind(), and a listener's address is taken; asyncio's message names it.
        async def main():
            server = await self.loop.create_server(lambda: Proto(self.loop), self.HOST, 0)
            addr = server.sockets[0].getsockname()
            with self.assertRaises(OSError) as cm:
                await self.loop.create_connection(lambda: Proto(self.loop), *addr, local_addr=addr)
            self.assertEqual(cm.exception.errno, errno.EADDRINUSE)
            self.assertIn(str(addr), cm.exception.strerror)
            server.close()
            await server.wait_closed()
        self.run_loop(main())

    def test_abort_peer_sees_end(self):
        async def main():
            server, sp, ct, cp = await self._pair()
            ct.write(b"x")
            await sp.wait_bytes(1)
            ct.abort()
            self.assertTrue(ct.is_closing())
            self.assertIsNone(await cp.lost)
            exc = await sp.lost
            self.assertTrue(exc is None or isinstance(exc, ConnectionResetError), exc)
            self.assertEqual(cp.events, ["made", "lost"])
            await self._finish(server)
        self.run_loop(main())

    def test_data_received_error_is_fatal(self):
        class Bad(Proto):
            def data_received(self, data):
                raise ZeroDivisionError("protocol bug")

        async def main():
            server, sp, ct, cp = await self._pair(server_proto=lambda: Bad(self.loop))
            ct.write(b"boom")
            exc = await sp.lost
            self.assertIsInstance(exc, ZeroDivisionError)
            await cp.lost
            await self._finish(server)
        self.run_loop(main())
        self.expect_exceptions(1)
        self.assertIn("data_received", self.handler_calls[0]["message"])

    def test_extra_info_socket(self):
        async def main():
            server, sp, ct, cp = await self._pair()
            sock = ct.get_extra_info("socket")
            self.assertIs(sock, ct.get_extra_info("socket"))
            self.assertEqual((sock.family, sock.type), (socket.AF_INET, socket.SOCK_STREAM))
            self.assertEqual(sock.getsockname(), ct.get_extra_info("sockname"))
            self.assertEqual(sock.getpeername(), ct.get_extra_info("peername"))
            self.assertEqual(ct.get_extra_info("peername"), sp.transport.get_extra_info("sockname"))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)
            self.assertTrue(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
            self.assertIsNone(ct.get_extra_info("sslcontext"))
            self.assertEqual(ct.get_extra_info("nope", 42), 42)
            self.assertIs(ct.get_protocol(), cp)
            await self._finish(server, cp, sp)
        self.run_loop(main())

    def test_tcp_nodelay_is_on_by_default_and_can_be_turned_off(self):
        # asyncio and uvloop set TCP_NODELAY on every TCP transport, client and server
        # side alike: a request written in two parts must not wait for Nagle.
        async def main():
            server, sp, ct, cp = await self._pair()
            for t in (ct, sp.transport):
                sock = t.get_extra_info("socket")
                self.assertTrue(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            sock = ct.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
            self.assertFalse(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            await self._finish(server, cp, sp)
        self.run_loop(main())

    def test_string_ports(self):
        # asyncio passes ports through getaddrinfo: "0", "8080" and service names work.
        async def main():
            server = await self.loop.create_server(lambda: Proto(self.loop), self.HOST, "0")
            port = server.sockets[0].getsockname()[1]
            self.assertIsInstance(port, int)
            self.assertNotEqual(port, 0)
            ct, cp = await self.loop.create_connection(lambda: Proto(self.loop), self.HOST, str(port))
            self.assertEqual(ct.get_extra_info("peername"), (self.HOST, port))
            ct.close()
            await cp.lost
            with self.assertRaises(socket.gaierror):
                await self.loop.create_connection(lambda: Proto(self.loop), self.HOST, "no-such-service")
            server.close()
            await server.wait_closed()
        self.run_loop(main())

    def test_connection_made_first_when_the_peer_speaks_first_or_closes(self):
        # asyncio calls connection_made before any data_received / eof_received, also
        # for a peer that sends a banner and closes the moment it accepts.
        class Banner(asyncio.Protocol):
            def connection_made(self, transport):
                transport.write(b"220 hello\r\n")
                transport.close()

        async def main():
            server = await self.loop.create_server(Banner, self.HOST, 0)
            port = server.sockets[0].getsockname()[1]
            conns = await asyncio.gather(*(self.loop.create_connection(lambda: Proto(self.loop), self.HOST, port)
                                           for _ in range(100)))
            for _, p in conns:
                await p.lost
                self.assertEqual(p.events[0], "made", p.events)
                self.assertEqual(bytes(p.data), b"220 hello\r\n")
            server.close()
            await server.wait_closed()
        self.run_loop(main())

    def test_server_start_serving_false_and_serve_forever(self):
        async def main():
            server = await self.loop.create_server(lambda: Proto(self.loop), self.HOST, 0, start_serving=False)
            self.assertFalse(server.is_serving())
            port = server.sockets[0].getsockname()[1]
            task = asyncio.ensure_future(server.serve_forever())
            await asyncio.sleep(0)
            self.assertTrue(server.is_serving())
            ct, cp = await self.loop.create_connection(lambda: Proto(self.loop), self.HOST, port)
            await cp.made
            ct.close()
            await cp.lost
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            self.assertFalse(server.is_serving())
            await server.wait_closed()
            self.assertEqual(server.sockets, ())

        async def ctx():
            async with await self.loop.create_server(lambda: Proto(self.loop), self.HOST, 0) as server:
                self.assertTrue(server.is_serving())
            self.assertFalse(server.is_serving())
        self.run_loop(main())
        self.run_loop(ctx())

    def test_backpressure_reaches_streams_app(self):
        # A server streaming to a client that stops reading must block in drain():
        # its transport buffer stays near the high-water mark instead of growing.
        written = []
        peak = []

        async def handle(reader, writer):
            writer.transport.set_write_buffer_limits(high=128 * 1024)
            chunk = b"s" * 65536
            try:
                for _ in range(400):                         # 25 MiB if nothing pushed back
                    writer.write(chunk)
                    written.append(len(chunk))
                    peak.append(writer.transport.get_write_buffer_size())
                    await writer.drain()
            except ConnectionError:
                pass
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, self.HOST, 0)
            reader, writer = await asyncio.open_connection(self.HOST, server.sockets[0].getsockname()[1])
            writer.transport.pause_reading()
            for _ in range(30):
                await asyncio.sleep(0.01)
            stalled = sum(written)
            self.assertLess(stalled, 12 * 2**20, "the server kept writing although nobody read")
            self.assertLessEqual(max(peak), 128 * 1024 + 65536)
            writer.transport.resume_reading()
            got = 0
            while chunk := await reader.read(2**20):
                got += len(chunk)
            self.assertEqual(got, 400 * 65536)
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
        self.run_loop(main(), timeout=30)

    @unittest.skipIf(sys.version_info < (3, 12), "wait_closed waits for connections on 3.12+")
    def test_wait_closed_waits_for_connections(self):
        async def main():
            server, sp, ct, cp = await self._pair()
            server.close()
            self.assertFalse(server.is_serving())
            waiter = asyncio.ensure_future(server.wait_closed())
            for _ in range(5):
                await asyncio.sleep(0.01)
            self.assertFalse(waiter.done())                  # a connection is still open
            sp.transport.close()
            await sp.lost
            await asyncio.wait_for(waiter, 5)
            await cp.lost
        self.run_loop(main())

    @unittest.skipIf(sys.version_info < (3, 13), "close_clients/abort_clients are 3.13+")
    def test_close_and_abort_clients(self):
        async def main():
            server, sp, ct, cp = await self._pair()
            ct2, cp2 = await self.loop.create_connection(
                lambda: Proto(self.loop), self.HOST, server.sockets[0].getsockname()[1])
            await cp2.made
            server.close()
            server.close_clients()
            self.assertIsNone(await sp.lost)
            await cp.lost
            await asyncio.sleep(0.01)
            server.abort_clients()
            await cp2.lost
            await asyncio.wait_for(server.wait_closed(), 5)
        self.run_loop(main())

    def test_many_concurrent_connections(self):
        async def handle(reader, writer):
            writer.write(await reader.readexactly(4))
            await writer.drain()
            writer.close()

        async def one(port, i):
            reader, writer = await asyncio.open_connection(self.HOST, port)
            writer.write(b"%04d" % i)
            got = await reader.read()
            writer.close()
            await writer.wait_closed()
            return got

        async def main():
            server = await asyncio.start_server(handle, self.HOST, 0, backlog=200)
            port = server.sockets[0].getsockname()[1]
            got = await asyncio.gather(*[one(port, i) for i in range(100)])
            self.assertEqual(got, [b"%04d" % i for i in range(100)])
            server.close()
            await server.wait_closed()
        self.run_loop(main(), timeout=30)


@unittest.skipUnless(have_tcp(), "TCP layer not merged")
class TestTCP_AIO(_TestTCP, AsyncioBase):
    pass


@unittest.skipUnless(have_tcp(), "TCP layer not merged")
class TestTCP_Rusty(_TestTCP, RustyBase):
    def test_wildcard_server_on_stack_and_kernel(self):
        async def handle(reader, writer):
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, "0.0.0.0", 0)
            port = server.sockets[0].getsockname()[1]
            kinds = {s.fileno() == -1 for s in server.sockets}
            self.assertEqual(kinds, {True, False})           # stack and kernel listeners
            for host in ("127.0.0.1", self.HOST):
                reader, writer = await asyncio.open_connection(host, port)
                self._check(writer.transport) if host == self.HOST else \
                    self.assertNotIsInstance(writer.transport, StackStreamTransport)
                writer.write(b"via %s\n" % host.encode())
                self.assertEqual(await reader.readline(), b"via %s\n" % host.encode())
                writer.close()
                await writer.wait_closed()
            server.close()
            await server.wait_closed()
        self.run_loop(main())

    def test_cancelled_connect_releases_handle(self):
        # 10.77.0.9 is on the link but nobody answers ARP: the connect never completes.
        async def main():
            task = asyncio.ensure_future(self.loop.create_connection(lambda: Proto(self.loop), "10.77.0.9", 80))
            await asyncio.sleep(0.05)
            self.assertFalse(task.done())
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
        self.run_loop(main())                    # teardown checks no stack socket is left

    def test_connect_to_silent_neighbour_fails_with_ehostunreach(self):
        # As on Linux: three ARP requests, 1 s apart, go unanswered and the connect fails
        # with EHOSTUNREACH (not ETIMEDOUT after two minutes of SYN retries). A connected
        # UDP endpoint to the same host hears nothing: a soft error, which the kernel
        # shows only to sockets with IP_RECVERR.
        async def main():
            utr, upr = await self.loop.create_datagram_endpoint(lambda: Recorder(self.loop),
                                                                remote_addr=("10.77.0.9", 9))
            utr.sendto(b"anyone?")
            with self.assertRaises(OSError) as cm:
                await self.loop.create_connection(lambda: Proto(self.loop), "10.77.0.9", 80)
            self.assertEqual(cm.exception.errno, errno.EHOSTUNREACH)
            self.assertIn("Connect call failed", str(cm.exception))
            await asyncio.sleep(0.05)
            self.assertTrue(upr.errors.empty())
            utr.close()
            await upr.lost
        self.run_loop(main(), timeout=30)

    def test_connection_routing(self):
        async def main():
            kserver = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
            kport = kserver.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", kport)
            self.assertNotIsInstance(writer.transport, StackStreamTransport)
            self.assertGreaterEqual(writer.get_extra_info("socket").fileno(), 0)
            writer.close()
            await writer.wait_closed()
            kserver.close()
            await kserver.wait_closed()
        self.run_loop(main())


class Views(ViewProtocol):
    def __init__(self, loop, keep=None):
        self.data = bytearray()
        self.kept = []
        self.keep = keep
        self.lost = loop.create_future()
        self.types = set()

    def connection_made(self, transport):
        self.transport = transport

    def view_received(self, view):
        self.types.add(type(view))
        self.data += view
        if self.keep == "view" and not self.kept:
            self.kept.append(view)
        elif self.keep == "slice" and not self.kept:
            self.kept.append((view[:4], bytes(view[:4])))

    def connection_lost(self, exc):
        self.lost.set_result(exc)


class _TestViews(_TCPHelpers):
    def test_view_protocol_receives_views_released_after_call(self):
        async def main():
            server, sp, ct, cp = await self._pair(server_proto=lambda: Views(self.loop, keep="view"))
            payload = os.urandom(3 * 2**20)
            ct.write(payload)
            ct.write_eof()
            await sp.lost
            self.assertEqual(bytes(sp.data), payload)
            self.assertEqual(sp.types, {memoryview})
            with self.assertRaises(ValueError):          # the stored view was released
                bytes(sp.kept[0])
            await self._finish(server, cp)
        self.run_loop(main(), timeout=20)


    def test_switching_to_a_view_protocol_mid_connection(self):
        """set_protocol() from a bytes protocol to a ViewProtocol: what follows arrives as views."""
        loop = self.loop
        views = Views(loop)

        class First(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                views.data += data
                views.transport = self.transport
                self.transport.set_protocol(views)

            def connection_lost(self, exc):
                views.connection_lost(exc)

        async def main():
            server, sp, ct, cp = await self._pair(server_proto=First)
            head = b"switch!"
            ct.write(head)
            while not views.data:
                await asyncio.sleep(0.01)
            payload = os.urandom(256 * 1024)
            ct.write(payload)
            ct.write_eof()
            await views.lost
            self.assertEqual(bytes(views.data), head + payload)
            self.assertEqual(views.types, {memoryview})
            await self._finish(server, cp)
        self.run_loop(main(), timeout=20)


@unittest.skipUnless(have_tcp(), "TCP layer not merged")
class TestViews_AIO(_TestViews, AsyncioBase):
    pass


@unittest.skipUnless(have_tcp(), "TCP layer not merged")
class TestViews_Rusty(_TestViews, RustyBase):
    def test_kept_slice_reported_and_never_overwritten(self):
        async def main():
            server, sp, ct, cp = await self._pair(server_proto=lambda: Views(self.loop, keep="slice"))
            first = os.urandom(1000)
            ct.write(first)
            await asyncio.sleep(0.05)
            ct.write(os.urandom(2 * 2**20))              # reuses the loop's view buffer (a fresh one)
            ct.write_eof()
            await sp.lost
            kept, copy = sp.kept[0]
            self.assertEqual(bytes(kept), copy)           # still the first bytes: not overwritten
            await self._finish(server, cp)
        self.run_loop(main(), timeout=20)
        self.expect_exceptions(1)
        self.assertIn("kept past the call", str(self.handler_calls[0]["exception"]))


class TestCloseSendsFinWithData_Rusty(RustyBase):
    """write() then close() in one callback: the FIN leaves in the segment that carries
    the data, as the kernel's close() sends it at once. A FIN a tick later lets an HTTP
    client close first, and then every request leaves a TIME-WAIT on the client."""

    TRACE = True                        # the server's frames, decoded

    def test_fin_rides_with_the_response(self):
        class Answer(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                self.transport.write(b"response")
                self.transport.close()

        async def main():
            server = await self.loop.create_server(Answer, self.HOST, 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(self.HOST, port)
            writer.write(b"request")
            self.assertEqual(await reader.read(), b"response")
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return port

        with self.assertLogs("aiorusty.trace", "INFO") as logs:
            port = self.run_loop(main())
        sent = [line for line in logs.output if " tx " in f" {line.split(':', 2)[-1]} "
                and f"TCP {port}>" in line and "len=8" in line]
        self.assertEqual(len(sent), 1, logs.output)
        self.assertIn("F", sent[0].split("[")[1].split("]")[0], sent[0])


class TestOutputAmidALongBatch_Rusty(RustyBase):
    """Requests of several connections arrive in one poll and each takes a while to
    answer: the first answers leave while the later requests are still handled (the
    selector hands queued output to the device every OUTPUT_AFTER_US of a batch), so
    a server and its client work in turns on halves of the connections rather than
    in lockstep on all of them."""

    CONNS = 4

    def run_batch(self, answer, read):
        """CONNS clients each send one request in the same tick to a server whose
        data_received is answer(transport, data) followed by a handler that outlasts
        OUTPUT_AFTER_US; their answers, each read by read(reader)."""
        import time
        from aiorusty import _selector

        class Slow(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                answer(self.transport, data)
                time.sleep(2 * _selector.OUTPUT_AFTER_US / 1e6)     # an expensive handler

        async def main():
            server = await self.loop.create_server(Slow, self.HOST, 0)
            port = server.sockets[0].getsockname()[1]
            conns = [await asyncio.open_connection(self.HOST, port) for _ in range(self.CONNS)]
            await asyncio.sleep(0.05)       # handshakes and their ACKs are done
            for i, (_, w) in enumerate(conns):
                w.write(b"q%d" % i)         # one tick: the server gets them in one poll
            answers = [await read(r) for r, _ in conns]
            for _, w in conns:
                w.close()
                await w.wait_closed()
            server.close()
            await server.wait_closed()
            return answers

        return self.run_loop(main())

    def test_first_answers_leave_before_the_batch_ends(self):
        server_stack = self.stacks[0]
        tx_at_entry = []

        def answer(transport, data):
            tx_at_entry.append(server_stack.stats()["eth_tx_frames"])
            transport.write(b"answer:" + data)

        answers = self.run_batch(answer, lambda r: r.readexactly(9))
        self.assertEqual(answers, [b"answer:q%d" % i for i in range(self.CONNS)])
        self.assertEqual(len(tx_at_entry), self.CONNS)
        # Each handler after the first finds the answers before it already sent.
        self.assertEqual([b - a for a, b in zip(tx_at_entry, tx_at_entry[1:])], [1] * (self.CONNS - 1),
                         tx_at_entry)

    def test_connections_closed_amid_a_batch_end_cleanly(self):
        """Answer-and-close handlers that each outlast OUTPUT_AFTER_US: the connections
        closed early in the batch are sent and freed by the output step between events,
        and the later events of the same batch still reach their own transports."""
        def answer(transport, data):
            transport.write(b"bye:" + data)
            transport.close()

        answers = self.run_batch(answer, lambda r: r.read())     # to EOF: the server closed
        self.assertEqual(answers, [b"bye:q%d" % i for i in range(self.CONNS)])
