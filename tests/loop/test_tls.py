"""TLS (ssl=, start_tls) and loop.sendfile on stream transports: one body on asyncio and aiorusty."""

import asyncio
import functools
import gc
import os
import ssl
import subprocess
import sys
import tempfile
import unittest
import weakref

from aiorusty.transports.stream import StackStreamTransport

from ._base import AsyncioBase, RustyBase, have_tcp


@functools.lru_cache(maxsize=None)
def _cert():
    d = tempfile.mkdtemp(prefix="aiorusty-tls-")
    key, crt = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=aiorusty.test", "-addext", "subjectAltName=DNS:aiorusty.test",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    return key, crt


def _contexts():
    key, crt = _cert()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(crt, key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(crt)
    return server, client


class _TestTLS:
    def _raw(self, writer):
        raw = writer.transport.get_extra_info("ssl_object") and writer.transport._ssl_protocol._transport
        self.assertEqual(isinstance(raw, StackStreamTransport), self.ON_STACK)

    def test_tls_echo(self):
        sctx, cctx = _contexts()

        async def handle(reader, writer):
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, self.HOST, 0, ssl=sctx)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(self.HOST, port, ssl=cctx,
                                                           server_hostname="aiorusty.test")
            self._raw(writer)
            self.assertIsNotNone(writer.get_extra_info("peercert"))
            self.assertIsNotNone(writer.get_extra_info("sslcontext"))
            payload = os.urandom(30_000).hex().encode() + b"\n"
            writer.write(payload)
            self.assertEqual(await reader.readline(), payload.upper())
            self.assertEqual(await reader.read(), b"")
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
        self.run_loop(main(), timeout=20)

    def test_tls_bad_certificate_fails_handshake(self):
        sctx, _ = _contexts()
        strict = ssl.create_default_context()                # does not trust our self-signed cert

        async def main():
            server = await asyncio.start_server(lambda r, w: w.close(), self.HOST, 0, ssl=sctx)
            port = server.sockets[0].getsockname()[1]
            with self.assertRaises(ssl.SSLCertVerificationError):
                await asyncio.open_connection(self.HOST, port, ssl=strict, server_hostname="aiorusty.test")
            server.close()
            await server.wait_closed()
            await asyncio.sleep(0.05)
        self.run_loop(main())
        if self.loop.get_debug():       # asyncio reports the server's failed handshake in debug mode
            self.expect_exceptions(1)
            self.assertEqual(self.handler_calls[0]["message"], "Error on transport creation for incoming connection")
            self.assertIn("transport", self.handler_calls[0])

    @unittest.skipIf(sys.version_info < (3, 11), "StreamWriter.start_tls is 3.11+")
    def test_start_tls_upgrade(self):
        sctx, cctx = _contexts()

        async def handle(reader, writer):
            self.assertEqual(await reader.readline(), b"STARTTLS\n")
            writer.write(b"OK\n")
            await writer.drain()
            await writer.start_tls(sctx)
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, self.HOST, 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(self.HOST, port)
            writer.write(b"STARTTLS\n")
            self.assertEqual(await reader.readline(), b"OK\n")
            await writer.start_tls(cctx, server_hostname="aiorusty.test")
            self._raw(writer)
            writer.write(b"secret\n")
            self.assertEqual(await reader.readline(), b"secret\n")
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
        self.run_loop(main())

    def test_sendfile(self):
        data = os.urandom(1_500_000)

        async def main():
            with tempfile.TemporaryFile() as f:
                f.write(data)
                f.flush()
                done = self.loop.create_future()

                async def handle(reader, writer):
                    sent = await self.loop.sendfile(writer.transport, f, offset=1000, count=1_000_000)
                    writer.close()
                    done.set_result(sent)

                server = await asyncio.start_server(handle, self.HOST, 0)
                port = server.sockets[0].getsockname()[1]
                reader, writer = await asyncio.open_connection(self.HOST, port)
                got = await reader.read()
                self.assertEqual(await done, 1_000_000)
                self.assertEqual(got, data[1000:1_001_000])
                writer.close()
                await writer.wait_closed()
                server.close()
                await server.wait_closed()
        self.run_loop(main(), timeout=20)


    def test_failed_connect_leaves_no_cycle_holding_ssl_context(self):
        # CPython's test_ssl test_handshake_timeout_handler_leak: without the garbage
        # collector, nothing may keep the client's SSLContext alive once create_connection
        # has failed, refused or timed out in the handshake.
        async def attempt(port, timeout=None):
            _, client = _contexts()
            ref = weakref.ref(client)
            try:
                await asyncio.wait_for(self.loop.create_connection(
                    asyncio.Protocol, self.HOST, port, ssl=client, server_hostname="aiorusty.test"), timeout)
            except (ConnectionRefusedError, asyncio.TimeoutError):
                pass
            else:
                self.fail("the connection should have failed")
            return ref

        async def main():
            silent = await self.loop.create_server(asyncio.Protocol, self.HOST, 0)   # never answers the hello
            port = silent.sockets[0].getsockname()[1]
            timed_out = await attempt(port, 0.2)
            silent.close()
            await silent.wait_closed()
            refused = await attempt(port)
            return timed_out, refused

        gc.disable()
        try:
            timed_out, refused = self.run_loop(main())
            self.assertIsNone(timed_out(), "a handshake timeout kept the SSLContext alive")
            self.assertIsNone(refused(), "a refused connection kept the SSLContext alive")
        finally:
            gc.enable()


@unittest.skipUnless(have_tcp(), "TCP layer not merged")
class TestTLS_AIO(_TestTLS, AsyncioBase):
    pass


@unittest.skipUnless(have_tcp(), "TCP layer not merged")
class TestTLS_Rusty(_TestTLS, RustyBase):
    pass
