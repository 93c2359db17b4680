"""create_server(reuse_port=True): several servers on one address and port, as
SO_REUSEPORT gives on Linux. One body on stock asyncio (the kernel) and on
aiorusty (the stack)."""

import asyncio
import errno
import socket
import unittest

from ._base import AsyncioBase, RustyBase, have_tcp

CLIENTS = 200


class Counting(asyncio.Protocol):
    """Echoes, and counts the connections its server accepted."""

    def __init__(self, counts, key):
        counts[key] += 1

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.transport.close()


class _TestReusePort:
    async def _servers(self, host, n=2):
        counts = [0] * n
        first = await self.loop.create_server(lambda: Counting(counts, 0), host, 0, reuse_port=True)
        port = first.sockets[0].getsockname()[1]
        rest = [await self.loop.create_server(lambda k=k: Counting(counts, k), host, port, reuse_port=True)
                for k in range(1, n)]
        return [first] + rest, port, counts

    async def _close(self, servers):
        for s in servers:
            s.close()
        for s in servers:
            await s.wait_closed()

    async def _echo(self, port, i):
        reader, writer = await asyncio.open_connection(self.HOST, port)
        msg = b"client %d\n" % i
        writer.write(msg)
        self.assertEqual(await reader.readline(), msg)
        writer.close()
        await writer.wait_closed()

    def test_connections_are_spread_over_the_servers(self):
        async def main():
            servers, port, counts = await self._servers(self.HOST)
            for batch in range(0, CLIENTS, 50):
                await asyncio.gather(*(self._echo(port, i) for i in range(batch, batch + 50)))
            await self._close(servers)
            return counts

        counts = self.run_loop(main(), timeout=30)
        self.assertEqual(sum(counts), CLIENTS)
        self.assertTrue(all(counts), f"a server got no connection: {counts}")

    def test_without_reuse_port_on_either_side_eaddrinuse(self):
        async def main():
            first = await self.loop.create_server(asyncio.Protocol, self.HOST, 0, reuse_port=True)
            port = first.sockets[0].getsockname()[1]
            plain = await self.loop.create_server(asyncio.Protocol, self.HOST, 0)
            plain_port = plain.sockets[0].getsockname()[1]
            codes = []
            for p, kw in ((port, {}), (port, {"reuse_port": False}), (plain_port, {"reuse_port": True}),
                          (port, {"reuse_address": True})):
                with self.assertRaises(OSError) as e:
                    await self.loop.create_server(asyncio.Protocol, self.HOST, p, **kw)
                codes.append(e.exception.errno)
            await self._close([first, plain])
            return codes

        self.assertEqual(self.run_loop(main()), [errno.EADDRINUSE] * 4)

    def test_wildcard_servers_share_the_port(self):
        async def main():
            servers, port, counts = await self._servers("0.0.0.0")
            for s in servers:
                self.assertEqual(s.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT), 1)
            await asyncio.gather(*(self._echo(port, i) for i in range(20)))
            await self._close(servers)
            return counts

        self.assertEqual(sum(self.run_loop(main())), 20)


@unittest.skipUnless(have_tcp(), "TCP layer not merged")
@unittest.skipUnless(hasattr(socket, "SO_REUSEPORT"), "no SO_REUSEPORT on this platform")
class TestReusePort_AIO(_TestReusePort, AsyncioBase):
    pass


@unittest.skipUnless(have_tcp(), "TCP layer not merged")
@unittest.skipUnless(hasattr(socket, "SO_REUSEPORT"), "no SO_REUSEPORT on this platform")
class TestReusePort_Rusty(_TestReusePort, RustyBase):
    pass
