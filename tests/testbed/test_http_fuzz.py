"""Property tests: whatever bytes arrive, in whatever pieces, the HTTP server's protocol never
raises, writes only whole responses, and after a close writes nothing more."""

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from aiorusty.testbed.http import HttpProtocol, HttpServerState, Pages, httptools

PAGES = Pages.generated(["64", "1k"])
LOOP = asyncio.new_event_loop()         # never run: holds the Date and linger timers
PARSERS = ["simple"] + (["httptools"] if httptools is not None else [])


class FakeTransport:
    def __init__(self):
        self.out = []
        self.closed = False
        self.eof = False

    def write(self, data):
        assert not self.closed and not self.eof, "write after close"
        self.out.append(bytes(data))

    def close(self):
        self.closed = True

    def write_eof(self):
        self.eof = True

    def can_write_eof(self):
        return True

    def get_extra_info(self, name, default=None):
        return default


pieces = st.lists(
    st.one_of(st.binary(max_size=64),
              st.sampled_from([b"GET /64 HTTP/1.1\r\n\r\n", b"HEAD /1k HTTP/1.0\r\n\r\n", b"\r\n",
                               b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", b"Content-Length: x\r\n",
                               b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n", b"GET  HTTP/1.1\r\n\r\n"])),
    max_size=12)


@settings(max_examples=300, deadline=None)
@given(chunks=pieces, parser=st.sampled_from(PARSERS))
def test_any_input_gives_whole_responses_only(chunks, parser):
    state = HttpServerState(PAGES, LOOP, parser=parser)
    proto = HttpProtocol(state)
    t = FakeTransport()
    proto.connection_made(t)
    for c in chunks:
        if t.closed:
            break
        proto.data_received(c)
    data = b"".join(t.out)
    n = 0
    while data:
        assert data.startswith(b"HTTP/1.1 "), data[:40]
        end = data.index(b"\r\n\r\n")
        head = data[:end].decode()
        length = int(head.split("Content-Length: ")[1].split("\r\n")[0])
        n += 1
        data = data[end + 4:]
        # A HEAD response has no body; no body starts like a response.
        if length and data and not data.startswith(b"HTTP/1.1 "):
            assert len(data) >= length, "truncated body"
            data = data[length:]
    assert n == state.requests
