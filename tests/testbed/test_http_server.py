"""The test-bed HTTP server's responses, byte for byte, on stock asyncio and on aiorusty,
with both request parsers: keep-alive, pipelining, HEAD, 404/400/405/413, Connection: close,
HTTP/1.0, a body written apart from its header (1 MiB)."""

import asyncio

import pytest

from aiorusty.testbed.http import HttpProtocol, HttpServerState, Pages, generated_body, httptools

from ._util import LoopCase, mask_date

BODY64, BODY1K, BODY1M = generated_body(64), generated_body(1024), generated_body(1 << 20)


def resp(status, reason, body, ctype=b"application/octet-stream", conn=b"", head=False, extra=b""):
    return (b"HTTP/1.1 %d %s\r\nServer: aiorusty\r\nDate: X\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n"
            % (status, reason, ctype, len(body), extra, conn)) + (b"" if head else body)


OK64 = resp(200, b"OK", BODY64)
NOT_FOUND = resp(404, b"Not Found", b"not found\n", b"text/plain")
CLOSE = b"Connection: close\r\n"


class _HttpBody:
    PARSER = "simple"

    def start(self):
        async def go():
            self.state = HttpServerState(Pages.generated(["64", "1k", "1m"]), self.loop, parser=self.PARSER)
            self.server = await self.loop.create_server(lambda: HttpProtocol(self.state), self.HOST, 0)
            return self.server.sockets[0].getsockname()[1]
        self.port = self.run_loop(go())

    def stop(self):
        self.state.stop_clock()
        self.server.close()
        self.run_loop(self.server.wait_closed())

    def exchange(self, *chunks, expect, eof=False):
        """Send chunks on one connection; read as many bytes as `expect` (masked) stands for."""
        async def go():
            r, w = await asyncio.open_connection(self.HOST, self.port)
            for c in chunks:
                w.write(c)
                await w.drain()
            want = len(expect) + 28 * expect.count(b"Date: X\r\n")
            got = await r.readexactly(want)
            at_eof = (await asyncio.wait_for(r.read(1), 2)) == b"" if eof else None
            w.close()
            await w.wait_closed()
            return got, at_eof
        got, at_eof = self.run_loop(go())
        assert mask_date(got) == expect
        if eof:
            assert at_eof, "the server should close the connection after this response"

    def test_get_keep_alive_then_second_request(self):
        self.start()
        req = b"GET /64 HTTP/1.1\r\nHost: x\r\n\r\n"
        self.exchange(req, req, expect=OK64 + OK64)
        assert self.state.requests == 2 and self.state.connections == 1
        self.stop()

    def test_pipelined_requests_in_one_write(self):
        self.start()
        reqs = (b"GET /64 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /1k HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /1k?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.exchange(reqs, expect=OK64 + resp(200, b"OK", BODY1K, head=True) + NOT_FOUND
                      + resp(200, b"OK", BODY1K))
        assert self.state.responses == {200: 3, 404: 1}
        self.stop()

    def test_request_split_across_writes(self):
        self.start()
        self.exchange(b"GET /6", b"4 HTTP/1.1\r\nHo", b"st: x\r\n\r", b"\n", expect=OK64)
        self.stop()

    def test_head_404(self):
        self.start()
        self.exchange(b"HEAD /missing HTTP/1.1\r\n\r\n", b"GET /64 HTTP/1.1\r\n\r\n",
                      expect=resp(404, b"Not Found", b"not found\n", b"text/plain", head=True) + OK64)
        self.stop()

    def test_400_closes(self):
        self.start()
        self.exchange(b"NONSENSE\r\n\r\n", expect=resp(400, b"Bad Request", b"bad request\n", b"text/plain",
                                                      CLOSE), eof=True)
        self.stop()

    def test_405_keeps_the_connection_and_skips_the_body(self):
        self.start()
        self.exchange(b"POST /64 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /64 HTTP/1.1\r\n\r\n",
                      expect=resp(405, b"Method Not Allowed", b"method not allowed\n", b"text/plain",
                                  extra=b"Allow: GET, HEAD\r\n") + OK64)
        self.stop()

    def test_413_body_too_large(self):
        self.start()
        self.exchange(b"POST /64 HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n",
                      expect=resp(413, b"Content Too Large", b"request too large\n", b"text/plain", CLOSE),
                      eof=True)
        self.stop()

    def test_413_header_too_large(self):
        self.start()
        self.exchange(b"GET /64 HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
                      expect=resp(413, b"Content Too Large", b"request too large\n", b"text/plain", CLOSE),
                      eof=True)
        self.stop()

    def test_connection_close_and_http10(self):
        self.start()
        self.exchange(b"GET /64 HTTP/1.1\r\nConnection: close\r\n\r\n", expect=resp(200, b"OK", BODY64, conn=CLOSE),
                      eof=True)
        self.exchange(b"GET /64 HTTP/1.0\r\n\r\n", expect=resp(200, b"OK", BODY64, conn=CLOSE), eof=True)
        self.exchange(b"GET /64 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", b"GET /64 HTTP/1.1\r\n\r\n",
                      expect=resp(200, b"OK", BODY64, conn=b"Connection: keep-alive\r\n") + OK64)
        self.stop()

    def test_big_body_written_apart(self):
        self.start()
        self.exchange(b"GET /1m HTTP/1.1\r\n\r\nGET /64 HTTP/1.1\r\n\r\n", expect=resp(200, b"OK", BODY1M) + OK64)
        self.stop()


class TestHttp_AIO(_HttpBody, LoopCase):
    KIND = "asyncio"


class TestHttp_Rusty(_HttpBody, LoopCase):
    KIND = "aiorusty"


@pytest.mark.skipif(httptools is None, reason="httptools not installed")
class TestHttpHttptools_AIO(_HttpBody, LoopCase):
    KIND = "asyncio"
    PARSER = "httptools"


@pytest.mark.skipif(httptools is None, reason="httptools not installed")
class TestHttpHttptools_Rusty(_HttpBody, LoopCase):
    KIND = "aiorusty"
    PARSER = "httptools"
