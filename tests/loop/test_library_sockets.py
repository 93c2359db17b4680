"""Sockets that libraries make themselves: one body on stock asyncio (kernel sockets on
127.0.0.1) and on aiorusty with the switch on (socket.socket() makes StackSockets, which
bind and connect on the stack: 10.77.0.1 served, clients from 10.77.0.2).

Covers the loop's sock_* methods, the socket calls libraries make (bind, listen,
connect_ex, accept, recv/recv_into, send, shutdown, getsockname/getpeername,
setsockopt/getsockopt, SO_ERROR), handing a socket to create_connection /
create_server / connect_accepted_socket / create_datagram_endpoint (sock=), and on
aiorusty only: a kernel listening socket passed as sock= also listens on the stack,
the switch leaves other sockets on the kernel, a stack socket has no descriptor and
never blocks.
"""

import asyncio
import errno
import hashlib
import os
import socket
import sys
import unittest

from aiorusty.sockets import StackSocket, stack_sockets_enabled, use_stack_sockets

from ._base import AsyncioBase, RustyBase, have_tcp


class _SwitchOn:
    """Mixed in before RustyBase: the switch is on for the test, off afterwards."""

    def setUp(self):
        super().setUp()
        use_stack_sockets(True)

    def tearDown(self):
        use_stack_sockets(False)
        super().tearDown()


def nb_socket(type_=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, type_)
    s.setblocking(False)
    return s


class _TestSockMethods:
    def listener(self):
        ls = nb_socket()
        ls.bind((self.HOST, 0))
        ls.listen(16)
        return ls

    async def connected(self):
        """(listener, client, accepted): a connection made with sock_accept and sock_connect."""
        ls = self.listener()
        c = nb_socket()
        accepting = asyncio.ensure_future(self.loop.sock_accept(ls))
        await self.loop.sock_connect(c, ls.getsockname())
        s, addr = await accepting
        self.assertEqual(addr, c.getsockname())
        return ls, c, s

    def check_where(self, *socks):
        for s in socks:
            self.assertEqual(isinstance(s, StackSocket) and s.on_stack, self.ON_STACK, s)
            if self.ON_STACK:
                self.assertEqual(s.fileno(), -1)

    def test_accept_connect_sendall_recv(self):
        payload = os.urandom(3 << 20)

        async def main():
            loop = self.loop
            ls, c, s = await self.connected()
            self.check_where(ls, c, s)
            self.assertEqual(s.getpeername(), c.getsockname())
            self.assertEqual(c.getpeername(), ls.getsockname())
            self.assertEqual(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0)
            sending = asyncio.ensure_future(loop.sock_sendall(c, payload))
            got = bytearray()
            buf = bytearray(65536)
            while len(got) < len(payload):
                n = await loop.sock_recv_into(s, buf)
                got += buf[:n]
            await sending
            self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(payload).digest())
            c.shutdown(socket.SHUT_WR)
            self.assertEqual(await loop.sock_recv(s, 100), b"")
            await loop.sock_sendall(s, b"bye")
            self.assertEqual(await loop.sock_recv(c, 100), b"bye")
            for x in (c, s, ls):
                x.close()
        self.run_loop(main(), timeout=30)

    def test_recv_would_block(self):
        async def main():
            ls, c, s = await self.connected()
            with self.assertRaises(BlockingIOError):
                s.recv(10)
            with self.assertRaises(BlockingIOError):
                ls.accept()
            for x in (c, s, ls):
                x.close()
        self.run_loop(main())

    def test_connect_refused(self):
        async def main():
            ls = self.listener()
            port = ls.getsockname()[1]
            ls.close()
            c = nb_socket()
            with self.assertRaises(ConnectionRefusedError):
                await self.loop.sock_connect(c, (self.HOST, port))
            c.close()
        self.run_loop(main())

    def test_nodelay_option(self):
        async def main():
            ls, c, s = await self.connected()
            self.assertEqual(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 0)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.assertNotEqual(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 0)
            self.assertEqual(c.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE), socket.SOCK_STREAM)
            for x in (c, s, ls):
                x.close()
        self.run_loop(main())

    def test_handed_to_streams(self):
        """create_server(sock=) with a bound socket, create_connection(sock=) with a connected one."""
        async def handle(reader, writer):
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        async def main():
            ls = nb_socket()
            ls.bind((self.HOST, 0))
            server = await asyncio.start_server(handle, sock=ls)
            c = nb_socket()
            await self.loop.sock_connect(c, server.sockets[0].getsockname())
            reader, writer = await asyncio.open_connection(sock=c)
            writer.write(b"hello\n")
            self.assertEqual(await reader.readline(), b"HELLO\n")
            self.assertEqual(await reader.read(), b"")
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
        self.run_loop(main())

    def test_connect_accepted_socket(self):
        async def main():
            loop = self.loop
            ls, c, s = await self.connected()
            got = loop.create_future()

            class Echo(asyncio.Protocol):
                def connection_made(self, tr):
                    self.tr = tr

                def data_received(self, data):
                    self.tr.write(data)
                    self.tr.close()

                def connection_lost(self, exc):
                    got.set_result(exc)

            tr, _ = await loop.connect_accepted_socket(Echo, s)
            await loop.sock_sendall(c, b"ping")
            self.assertEqual(await loop.sock_recv(c, 10), b"ping")
            self.assertIsNone(await got)
            self.assertEqual(await loop.sock_recv(c, 10), b"")
            c.close()
            ls.close()
        self.run_loop(main())

    @unittest.skipIf(sys.version_info < (3, 11), "loop.sock_sendto/sock_recvfrom are new in 3.11")
    def test_udp(self):
        async def main():
            loop = self.loop
            a = nb_socket(socket.SOCK_DGRAM)
            a.bind((self.HOST, 0))
            b = nb_socket(socket.SOCK_DGRAM)
            b.bind((self.HOST, 0))
            self.check_where(a, b)
            await loop.sock_sendto(a, b"one", b.getsockname())
            self.assertEqual(await loop.sock_recvfrom(b, 100), (b"one", a.getsockname()))
            with self.assertRaises(BlockingIOError):
                b.recvfrom(100)
            received = loop.create_future()

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data, addr):
                    received.set_result((data, addr))

            tr, _ = await loop.create_datagram_endpoint(Proto, sock=b)
            a.sendto(b"two", tr.get_extra_info("sockname"))
            self.assertEqual(await received, (b"two", a.getsockname()))
            tr.close()
            a.close()
        self.run_loop(main())

    def test_sendfile_falls_back(self):
        async def main():
            import tempfile
            loop = self.loop
            ls, c, s = await self.connected()
            data = os.urandom(200_000)
            with tempfile.TemporaryFile() as f:
                f.write(data)
                f.seek(0)
                sending = asyncio.ensure_future(loop.sock_sendfile(c, f))
                got = bytearray()
                while len(got) < len(data):
                    got += await loop.sock_recv(s, 65536)
                self.assertEqual(await sending, len(data))
            self.assertEqual(bytes(got), data)
            for x in (c, s, ls):
                x.close()
        self.run_loop(main())


class TestSockMethods_AIO(_TestSockMethods, AsyncioBase):
    pass


@unittest.skipUnless(have_tcp(), "the stack's TCP layer is not built")
class TestSockMethods_Rusty(_TestSockMethods, _SwitchOn, RustyBase):
    pass


@unittest.skipUnless(have_tcp(), "the stack's TCP layer is not built")
class TestStackSocketRules(_SwitchOn, RustyBase):
    """What only aiorusty has: the routing of library sockets."""

    def test_kernel_listener_passed_as_sock_also_listens_on_stack(self):
        async def handle(reader, writer):
            writer.write(b"served\n")
            writer.close()

        async def main():
            use_stack_sockets(False)            # a plain kernel socket, as a parent process binds it
            ls = socket.socket()
            ls.bind(("0.0.0.0", 0))
            ls.listen(8)
            port = ls.getsockname()[1]
            server = await asyncio.start_server(handle, sock=ls)
            kinds = sorted(type(s).__name__ for s in server.sockets)
            self.assertEqual(len(kinds), 1 + len(self.stacks), kinds)
            for host in (self.HOST, "127.0.0.1"):   # the stack's peers, and the kernel's
                reader, writer = await asyncio.open_connection(host, port)
                self.assertEqual(await reader.readline(), b"served\n")
                writer.close()
                await writer.wait_closed()
            server.close()
            await server.wait_closed()
        self.run_loop(main())

    def test_other_sockets_stay_on_the_kernel(self):
        async def main():
            self.assertTrue(stack_sockets_enabled())
            kernel = socket.socket()
            kernel.bind(("127.0.0.1", 0))       # an address no stack owns
            self.assertFalse(kernel.on_stack)
            self.assertGreaterEqual(kernel.fileno(), 0)
            six = socket.socket(socket.AF_INET6)
            six.bind(("::1", 0))
            self.assertFalse(six.on_stack)
            wild = socket.socket()
            wild.bind(("0.0.0.0", 0))
            self.assertFalse(wild.on_stack)
            for s in (kernel, six, wild):
                s.close()
        self.run_loop(main())
        outside = socket.socket()               # no aiorusty loop running: the kernel's
        with self.assertRaises(OSError) as cm:
            outside.bind((self.HOST, 0))
        self.assertEqual(cm.exception.errno, errno.EADDRNOTAVAIL)
        self.assertFalse(outside.on_stack)
        outside.close()

    def test_stack_socket_never_blocks_and_has_no_descriptor(self):
        async def main():
            ls = socket.socket()                # blocking mode, as created
            ls.bind((self.HOST, 0))
            ls.listen()
            self.assertEqual(ls.fileno(), -1)
            self.assertTrue(ls.getblocking())
            with self.assertRaises(BlockingIOError):
                ls.accept()
            with self.assertRaises(OSError) as cm:
                ls.dup()
            self.assertEqual(cm.exception.errno, errno.EOPNOTSUPP)
            import pickle
            with self.assertRaises(TypeError):
                pickle.dumps(ls)
            ls.close()
        self.run_loop(main())

    def test_closed_socket_releases_its_handle(self):
        async def main():
            before = self.stacks[0].stats()["sockets"]
            ls = socket.socket()
            ls.bind((self.HOST, 0))
            ls.listen()
            self.assertEqual(self.stacks[0].stats()["sockets"], before + 1)
            ls.close()
            self.assertEqual(self.stacks[0].stats()["sockets"], before)
            ls = socket.socket()
            ls.bind((self.HOST, 0))
            ls.listen()
            del ls                              # collected unclosed: the handle goes too
            import gc
            gc.collect()
            self.assertEqual(self.stacks[0].stats()["sockets"], before)
        self.run_loop(main())

    def test_wildcard_listener_accepts_kernel_and_stack_peers(self):
        """anyio's default listener: a wildcard socket served by sock_accept."""
        async def main():
            loop = self.loop
            ls = socket.socket()
            ls.setblocking(False)
            ls.bind(("0.0.0.0", 0))
            ls.listen()
            self.assertFalse(ls.on_stack)
            port = ls.getsockname()[1]
            accepted = []

            async def serve():
                while True:
                    s, addr = await loop.sock_accept(ls)
                    accepted.append(s.on_stack)
                    await loop.sock_sendall(s, b"hi")
                    s.close()

            server = asyncio.ensure_future(serve())
            for host in (self.HOST, "127.0.0.1", self.HOST):
                c = nb_socket()
                await loop.sock_connect(c, (host, port))
                self.assertEqual(await loop.sock_recv(c, 10), b"hi")
                c.close()
            self.assertEqual(sorted(accepted), [False, True, True])
            server.cancel()
            ls.close()
        self.run_loop(main())
