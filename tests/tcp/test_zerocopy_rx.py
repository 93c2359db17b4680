"""Zero-copy receive (rusty_tcp_peek / rusty_tcp_consume): a view of the readable
bytes in place in the receive ring, released by consume, which opens the
window (RFC 1122 4.2.3.3 window update) like recv does."""

import errno

import pytest

from aiorusty._rusty import lib
from _script import Peer


@pytest.fixture
def p():
    peer = Peer(tcp_rcvbuf=8192)
    yield peer
    peer.close()


def test_peek_is_a_view_and_consume_releases(p):
    c = p.passive_open()
    st = p.stack
    assert st.tcp_peek(c.sock) is None                      # nothing yet (-EAGAIN)
    c.send("A", b"hello world")
    v = st.tcp_peek(c.sock)
    assert isinstance(v, memoryview) and v.readonly and bytes(v) == b"hello world"
    assert st.tcp_peek(c.sock) == v                          # peeking does not consume
    st.tcp_consume(c.sock, 6)
    assert c.info()["bytes_readable"] == 5
    assert bytes(st.tcp_peek(c.sock)) == b"world"
    assert st.tcp_recv(c.sock) == b"world"                   # recv and consume share the queue
    assert st.tcp_peek(c.sock) is None


def test_peek_points_into_the_ring(p):
    c = p.passive_open()
    st = p.stack
    c.send("A", b"abc")
    v1 = st.tcp_peek(c.sock)
    c.send("A", b"def")                                      # arrives behind it, same ring
    v2 = st.tcp_peek(c.sock)
    assert bytes(v2) == b"abcdef"
    # Both views start at the same address: the ring's, not a copy.
    from aiorusty._rusty import ffi
    assert ffi.from_buffer(v1) == ffi.from_buffer(v2)


def test_wrapped_region_is_read_in_two_peeks(p):
    c = p.passive_open()
    st = p.stack
    c.send("A", b"x" * 1460)
    c.send("A", b"y" * 1460)
    c.send("A", b"z" * 1460)
    c.send("A", b"w" * 1460)
    st.tcp_consume(c.sock, 4 * 1460 - 10)                 # 10 bytes stay at ring offset 5830
    p.poll()
    c.segs()
    data = b"w" * 10 + bytes(range(256)) * 12               # 3082 bytes from 5830: crosses the 8192 end
    c.send("A", data[10:1470])
    c.send("A", data[1470:2930])
    c.send("A", data[2930:])
    v = st.tcp_peek(c.sock)
    assert len(v) == 8192 - 5830                            # up to the ring's end
    first = bytes(v)
    st.tcp_consume(c.sock, len(v))
    rest = bytes(st.tcp_peek(c.sock))
    assert first + rest == data
    st.tcp_consume(c.sock, len(rest))
    assert st.tcp_peek(c.sock) is None


def test_consume_opens_the_window(p):
    c = p.passive_open()
    st = p.stack
    for _ in range(5):
        c.send("A", b"q" * 1460)
    p.advance(40_000)
    s = c.segs()[-1]
    assert s.rack == 7300 and s.window == 8192 - 7300
    st.tcp_consume(c.sock, 100)                             # too little to advertise (SWS avoidance)
    p.poll()
    p.nothing()
    st.tcp_consume(c.sock, 7200)
    p.poll()
    c.expect("A", ack=7300, window=8192)                     # window update


def test_eof_and_errors(p):
    c = p.passive_open()
    st = p.stack
    c.send("FA", b"bye")
    assert bytes(st.tcp_peek(c.sock)) == b"bye"
    with pytest.raises(OSError) as e:
        st.tcp_consume(c.sock, 4)                           # more than readable
    assert e.value.errno == errno.EINVAL
    st.tcp_consume(c.sock, 3)
    assert st.tcp_peek(c.sock) == b""                        # EOF
    out = __import__("aiorusty._rusty", fromlist=["ffi"]).ffi
    data, size = out.new("const uint8_t **"), out.new("size_t *")
    assert lib.rusty_tcp_peek(st._ptr, 0xdead, data, size) == -errno.EBADF


def test_peek_reports_reset_like_recv(p):
    c = p.passive_open()
    st = p.stack
    c.send("R")
    with pytest.raises(ConnectionResetError):
        st.tcp_peek(c.sock)
    assert st.tcp_peek(c.sock) == b""                        # reported once, then EOF


def test_detach_keeps_a_kept_view_intact(p):
    import gc
    import weakref
    c = p.passive_open()
    st = p.stack
    c.send("A", b"first bytes")
    v = st.tcp_peek(c.sock)
    kept = v[:5]                                             # kept past its use
    owner = st.tcp_rx_detach(c.sock)                         # before consume, which gives an empty ring back
    st.tcp_consume(c.sock, len(v))
    region = kept.obj
    weakref.finalize(region, lambda o: None, owner)          # the ring lives as long as the view
    del owner, v
    for i in range(5):                                       # new data lands at the same ring offsets
        c.send("A", b"Z" * 11)
        assert st.tcp_recv(c.sock) == b"Z" * 11
    assert bytes(kept) == b"first"
    del kept, region
    gc.collect()
