"""UDP endpoints: one body on stock asyncio (kernel loopback) and aiorusty (stack over loopback)."""

import asyncio
import socket
import sys
import unittest

from aiorusty.transports.datagram import StackDatagramTransport

from ._base import AsyncioBase, RustyBase


class Recorder(asyncio.DatagramProtocol):
    """Records every callback; `got` is a queue of datagrams, `errors` of error_received."""

    def __init__(self, loop, echo=False):
        self.events = []
        self.echo = echo
        self.got = asyncio.Queue()
        self.errors = asyncio.Queue()
        self.lost = loop.create_future()
        self.transport = None

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport

    def datagram_received(self, data, addr):
        self.events.append("data")
        self.got.put_nowait((data, addr))
        if self.echo:
            self.transport.sendto(data.upper(), addr)

    def error_received(self, exc):
        self.events.append("error")
        self.errors.put_nowait(exc)

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


class _TestUDP:
    async def _server(self, echo=True):
        tr, pr = await self.loop.create_datagram_endpoint(
            lambda: Recorder(self.loop, echo), local_addr=(self.HOST, 0))
        return tr, pr

    def _check_transport(self, tr):
        if self.ON_STACK:
            self.assertIsInstance(tr, StackDatagramTransport)
        else:
            self.assertNotIsInstance(tr, StackDatagramTransport)

    def test_echo_connected_client(self):
        async def main():
            srv, spr = await self._server()
            addr = srv.get_extra_info("sockname")
            self.assertEqual(addr[0], self.HOST)
            self.assertNotEqual(addr[1], 0)
            self._check_transport(srv)
            cli, cpr = await self.loop.create_datagram_endpoint(
                lambda: Recorder(self.loop), remote_addr=addr)
            self._check_transport(cli)
            self.assertEqual(cli.get_extra_info("peername"), addr)
            cli.sendto(b"ping 0")
            replies = [await cpr.got.get()]
            for i in range(1, 5):
                cli.sendto(b"ping %d" % i)
            replies += [await cpr.got.get() for _ in range(4)]
            self.assertEqual(sorted(d for d, _ in replies), [b"PING %d" % i for i in range(5)])
            self.assertEqual({a for _, a in replies}, {addr})
            seen = [await spr.got.get() for _ in range(5)]
            self.assertEqual({a for _, a in seen}, {cli.get_extra_info("sockname")})
            sock = cli.get_extra_info("socket")
            self.assertIs(sock, cli.get_extra_info("socket"))
            self.assertEqual((sock.family, sock.type), (socket.AF_INET, socket.SOCK_DGRAM))
            self.assertEqual(sock.getsockname(), cli.get_extra_info("sockname"))
            self.assertEqual(sock.getpeername(), addr)
            self.assertFalse(cli.is_closing())
            cli.close()
            self.assertTrue(cli.is_closing())
            cli.close()
            self.assertIsNone(await cpr.lost)
            srv.close()
            self.assertIsNone(await spr.lost)
            await asyncio.sleep(0)
            self.assertEqual(cpr.events, ["made"] + ["data"] * 5 + ["lost"])
            self.assertEqual(spr.events, ["made"] + ["data"] * 5 + ["lost"])
        self.run_loop(main())

    def test_string_remote_port(self):
        # asyncio resolves a port given as a string (getaddrinfo takes "9000" and service names).
        async def main():
            srv, spr = await self._server()
            host, port = srv.get_extra_info("sockname")
            cli, cpr = await self.loop.create_datagram_endpoint(lambda: Recorder(self.loop),
                                                                remote_addr=(host, str(port)))
            self.assertEqual(cli.get_extra_info("peername"), (host, port))
            cli.sendto(b"ping")
            self.assertEqual(await cpr.got.get(), (b"PING", (host, port)))
            cli.close()
            srv.close()
            await cpr.lost
            await spr.lost
        self.run_loop(main())

    def test_burst_to_new_peer(self):
        # The first datagrams to a peer not yet in the ARP cache must not be lost.
        async def main():
            srv, spr = await self._server()
            cli, cpr = await self.loop.create_datagram_endpoint(
                lambda: Recorder(self.loop), remote_addr=srv.get_extra_info("sockname"))
            try:
                for i in range(8):
                    cli.sendto(b"burst %d" % i)
                return sorted([(await cpr.got.get())[0] for _ in range(8)])
            finally:
                cli.close()
                srv.close()
        self.assertEqual(self.run_loop(main(), timeout=3), [b"BURST %d" % i for i in range(8)])

    def test_unconnected_sendto(self):
        async def main():
            srv, spr = await self._server()
            addr = srv.get_extra_info("sockname")
            cli, cpr = await self.loop.create_datagram_endpoint(
                lambda: Recorder(self.loop), local_addr=(self.PEER_HOST, 0))
            self.assertIsNone(cli.get_extra_info("peername"))
            cli.sendto(b"hello", addr)
            self.assertEqual(await cpr.got.get(), (b"HELLO", addr))
            cli.sendto(bytearray(b"ba"), addr)
            cli.sendto(memoryview(b"mv"), addr)
            self.assertEqual(sorted([(await cpr.got.get())[0] for _ in range(2)]), [b"BA", b"MV"])
            with self.assertRaises(TypeError):
                cli.sendto("text", addr)
            cli.close()
            srv.close()
            await cpr.lost
            await spr.lost
        self.run_loop(main())

    def test_connected_rejects_other_address(self):
        async def main():
            srv, spr = await self._server()
            addr = srv.get_extra_info("sockname")
            cli, cpr = await self.loop.create_datagram_endpoint(lambda: Recorder(self.loop), remote_addr=addr)
            with self.assertRaises(ValueError):
                cli.sendto(b"x", (addr[0], addr[1] + 1))
            cli.sendto(b"x", addr)
            self.assertEqual((await cpr.got.get())[0], b"X")
            cli.abort()
            self.assertIsNone(await cpr.lost)
            cli.sendto(b"after close")            # dropped silently, as asyncio does
            srv.close()
            await spr.lost
            self.assertEqual(cpr.events, ["made", "data", "lost"])
        self.run_loop(main())

    def test_error_received_port_unreachable(self):
        async def main():
            gone, gpr = await self._server()
            port = gone.get_extra_info("sockname")[1]
            gone.close()
            await gpr.lost
            cli, cpr = await self.loop.create_datagram_endpoint(
                lambda: Recorder(self.loop), remote_addr=(self.HOST, port))
            cli.sendto(b"anyone?")
            exc = await asyncio.wait_for(cpr.errors.get(), 5)
            self.assertIsInstance(exc, ConnectionRefusedError)
            self.assertFalse(cli.is_closing())
            cli.close()
            await cpr.lost
            self.assertEqual(cpr.events, ["made", "error", "lost"])
        self.run_loop(main())

    def test_datagram_received_exception_goes_to_handler(self):
        class Bad(Recorder):
            def datagram_received(self, data, addr):
                super().datagram_received(data, addr)
                if data == b"bad":
                    raise ZeroDivisionError("protocol bug")

        async def main():
            srv, spr = await self.loop.create_datagram_endpoint(
                lambda: Bad(self.loop), local_addr=(self.HOST, 0))
            cli, cpr = await self.loop.create_datagram_endpoint(
                lambda: Recorder(self.loop), remote_addr=srv.get_extra_info("sockname"))
            cli.sendto(b"bad")
            self.assertEqual((await spr.got.get())[0], b"bad")
            cli.sendto(b"good")
            self.assertEqual((await spr.got.get())[0], b"good")
            self.assertFalse(srv.is_closing())
            cli.close()
            srv.close()
            await cpr.lost
            await spr.lost
        self.run_loop(main())
        self.expect_exceptions(1)
        self.assertIsInstance(self.handler_calls[0]["exception"], ZeroDivisionError)

    @unittest.skipIf(sys.version_info < (3, 11), "datagram transports pause reading on 3.11+")
    def test_pause_resume_reading(self):
        async def main():
            srv, spr = await self._server(echo=False)
            cli, cpr = await self.loop.create_datagram_endpoint(
                lambda: Recorder(self.loop), remote_addr=srv.get_extra_info("sockname"))
            cli.sendto(b"first")
            self.assertEqual((await spr.got.get())[0], b"first")
            srv.pause_reading()
            srv.pause_reading()
            self.assertFalse(srv.is_reading())
            for i in range(3):
                cli.sendto(b"queued %d" % i)
            for _ in range(10):
                await asyncio.sleep(0.005)
            self.assertTrue(spr.got.empty())
            srv.resume_reading()
            self.assertTrue(srv.is_reading())
            got = [(await spr.got.get())[0] for _ in range(3)]
            self.assertEqual(got, [b"queued %d" % i for i in range(3)])
            cli.close()
            srv.close()
            await cpr.lost
            await spr.lost
        self.run_loop(main())

    def test_write_buffer_limits_api(self):
        async def main():
            srv, spr = await self._server(echo=False)
            self.assertEqual(srv.get_write_buffer_size(), 0)
            srv.set_write_buffer_limits(high=1000, low=100)
            self.assertEqual(srv.get_write_buffer_limits(), (100, 1000))
            srv.close()
            await spr.lost
        self.run_loop(main())


    def test_socket_options_from_arguments(self):
        # CPython's test_base_events test_create_datagram_endpoint_sockopts: options are
        # set only when asked for, and the transport's socket reads them back.
        async def main():
            sol = socket.SOL_SOCKET
            tr, pr = await self.loop.create_datagram_endpoint(lambda: Recorder(self.loop), local_addr=(self.HOST, 0))
            sock = tr.get_extra_info("socket")
            self.assertFalse(sock.getsockopt(sol, socket.SO_REUSEPORT))
            self.assertFalse(sock.getsockopt(sol, socket.SO_BROADCAST))
            tr.close()
            await pr.lost
            tr, pr = await self.loop.create_datagram_endpoint(lambda: Recorder(self.loop), local_addr=(self.HOST, 0),
                                                              reuse_port=True, allow_broadcast=True)
            sock = tr.get_extra_info("socket")
            self.assertFalse(sock.getsockopt(sol, socket.SO_REUSEADDR))
            self.assertTrue(sock.getsockopt(sol, socket.SO_REUSEPORT))
            self.assertTrue(sock.getsockopt(sol, socket.SO_BROADCAST))
            tr.close()
            await pr.lost
            removed = TypeError if sys.version_info >= (3, 11) else ValueError
            with self.assertRaisesRegex(removed, "reuse_address"):
                await self.loop.create_datagram_endpoint(lambda: Recorder(self.loop), local_addr=(self.HOST, 0),
                                                         reuse_address=True)
        self.run_loop(main())


class TestUDP_AIO(_TestUDP, AsyncioBase):
    pass


class TestUDP_Rusty(_TestUDP, RustyBase):
    def test_routing_rule(self):
        async def main():
            made = []
            for kw, on_stack in [
                (dict(local_addr=("10.77.0.1", 0)), True),
                (dict(local_addr=("0.0.0.0", 0)), True),
                (dict(local_addr=("127.0.0.1", 0)), False),
                (dict(remote_addr=("127.0.0.1", 9)), False),
                (dict(remote_addr=("10.77.0.1", 9)), True),
                (dict(remote_addr=("10.77.0.9", 9)), True),
                (dict(local_addr=("127.0.0.1", 0), remote_addr=("127.0.0.1", 9)), False),
                (dict(local_addr=("10.77.0.2", 0), remote_addr=("10.77.0.1", 9)), True),
                (dict(local_addr=("10.77.0.1", 0), family=socket.AF_INET), True),
            ]:
                tr, pr = await self.loop.create_datagram_endpoint(lambda: Recorder(self.loop), **kw)
                made.append((tr, pr))
                self.assertEqual(isinstance(tr, StackDatagramTransport), on_stack, kw)
                self.assertEqual(tr.get_extra_info("socket").fileno() == -1, on_stack, kw)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                tr, pr = await self.loop.create_datagram_endpoint(lambda: Recorder(self.loop), sock=s.dup())
                self.assertNotIsInstance(tr, StackDatagramTransport)
                made.append((tr, pr))
            for tr, pr in made:
                tr.close()
                await pr.lost
        self.run_loop(main())

    def test_stack_counts_traffic(self):
        async def main():
            def total(key):
                return sum(st.stats()[key] for st in self.loop.stacks)
            before = {k: total(k) for k in ("udp_tx", "udp_rx")}
            srv, spr = await self._server()
            cli, cpr = await self.loop.create_datagram_endpoint(
                lambda: Recorder(self.loop), remote_addr=srv.get_extra_info("sockname"))
            cli.sendto(b"count me")
            await cpr.got.get()
            after = {k: total(k) for k in ("udp_tx", "udp_rx")}
            self.assertGreaterEqual(after["udp_tx"] - before["udp_tx"], 2)
            self.assertGreaterEqual(after["udp_rx"] - before["udp_rx"], 2)
            cli.close()
            srv.close()
            await cpr.lost
            await spr.lost
        self.run_loop(main())
