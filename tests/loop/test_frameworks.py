"""Unmodified frameworks on our transports, both ends in one loop: an aiohttp server, with an
asyncio-streams HTTP/1.1 client, on stock asyncio and on aiorusty.

(aiohttp's own ClientSession is not used: since aiohttp 3.10 it opens kernel sockets itself
through aiohappyeyeballs and passes sock= to create_connection, so by the routing rule its
connections stay on the kernel, which cannot reach the stack's addresses.)"""

import asyncio
import hashlib
import os
import unittest

from ._base import AsyncioBase, RustyBase, have_tcp

try:
    from aiohttp import web
except ImportError:                                     # pragma: no cover
    web = None


class _TestAiohttp:
    def test_aiohttp_server_and_client(self):
        blob = os.urandom(3 * 2**20)

        async def hello(request):
            return web.Response(text=f"hello {request.remote}")

        async def echo_sha(request):
            return web.Response(text=hashlib.sha256(await request.read()).hexdigest())

        async def big(request):
            return web.Response(body=blob)

        async def main():
            app = web.Application(client_max_size=16 * 2**20)
            app.add_routes([web.get("/", hello), web.post("/sha", echo_sha), web.get("/big", big)])
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.HOST, 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]
            try:
                reader, writer = await asyncio.open_connection(self.HOST, port)

                async def request(method, path, body=b""):
                    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
                                 .encode() + body)
                    status = await reader.readline()
                    length = None
                    while (line := await reader.readline()) != b"\r\n":
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    return status.split()[1], await reader.readexactly(length)

                self.assertEqual(await request("GET", "/"), (b"200", f"hello {self.PEER_HOST}".encode()))
                for _ in range(3):                           # keep-alive
                    self.assertEqual(await request("POST", "/sha", blob),
                                     (b"200", hashlib.sha256(blob).hexdigest().encode()))
                self.assertEqual(await request("GET", "/big"), (b"200", blob))
                writer.close()
                await writer.wait_closed()
            finally:
                await runner.cleanup()
        self.run_loop(main(), timeout=30)


@unittest.skipUnless(web is not None and have_tcp(), "needs aiohttp and the TCP layer")
class TestAiohttp_AIO(_TestAiohttp, AsyncioBase):
    pass


@unittest.skipUnless(web is not None and have_tcp(), "needs aiohttp and the TCP layer")
class TestAiohttp_Rusty(_TestAiohttp, RustyBase):
    pass
