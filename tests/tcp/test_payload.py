"""Static payloads on the TCP send queue (DESIGN 2 "precomputed checksums", 4 "zero-copy"):
segments built from payload ranges carry exactly the right bytes and a checksum
computed from the prefix table (verified here in Python, independently of C),
interleave with ordinary bytes in write order, are retransmitted the same way,
and keep their payload alive after Python dropped it."""

import errno
import gc
import random
import struct

import pytest

from aiorusty._payload import StaticPayload
from _pkt import csum, ip4
from _script import EV, Peer, ev_types


@pytest.fixture(params=["copy", "gather"])
def p(request):
    # copy: segments are copied from the payload into frames (the pair offers no
    # offload, so checksums come from the prefix tables); gather: the pair offers
    # scatter-gather, so frames point into the payload and hold a reference to it.
    peer = Peer(gather=request.param == "gather")
    yield peer
    peer.close()


def data_of(n, seed=1):
    return random.Random(seed).randbytes(n)


def python_csum_ok(seg):
    """Recompute the TCP checksum of a segment the stack sent, from its fields."""
    opts = b""
    if "ts" in seg.opts:
        opts = b"\x01\x01\x08\x0a" + struct.pack("!II", *seg.opts["ts"])
    off = (20 + len(opts)) // 4
    hdr = struct.pack("!HHIIBBHHH", seg.sport, seg.dport, seg.seq, seg.ack, off << 4, seg.flags, seg.window,
                      0, 0) + opts
    pseudo = ip4(seg.src) + ip4(seg.dst) + struct.pack("!BBH", 0, 6, len(hdr) + len(seg.payload))
    return csum(pseudo + hdr + seg.payload) == seg.csum


def drain(c, una=None):
    """All segments now; returns their payloads joined."""
    return b"".join(s.payload for s in c.segs())


def test_payload_segments_bytes_and_checksum(p):
    c = p.passive_open()
    data = data_of(5000)
    pl = StaticPayload(data)
    p.stack.tcp_setsockopt(c.sock, "nodelay", 1)
    # An odd start and an odd length: every segment's range starts at an odd payload offset.
    assert p.stack.tcp_send_payload(c.sock, pl, 3, 4001, now_us=p.now) == 4001
    assert c.info()["bytes_queued"] == 4001
    p.poll()
    segs = c.segs()
    assert [s.rseq for s in segs] == [0, 1460, 2920]
    assert [len(s.payload) for s in segs] == [1460, 1460, 1081]
    assert b"".join(s.payload for s in segs) == data[3:4004]
    for s in segs:
        assert s.csum_ok and python_csum_ok(s), s
    # A corrupted copy must fail the Python check (the check can fail).
    bad = segs[0]
    bad.payload = bytes([bad.payload[0] ^ 1]) + bad.payload[1:]
    assert not python_csum_ok(bad)
    c.send("A", ack=4001)
    p.nothing()
    assert c.info()["bytes_queued"] == 0


def test_payload_checksum_with_timestamps(p):
    # Options in the header (12 bytes of timestamps) and a one-byte segment.
    from _script import tcp_options
    c = p.passive_open(options=tcp_options(mss=1460, ts=(100, 0)))
    c.ts = (101, c.synack.opts["ts"][0])
    pl = StaticPayload(b"\xff" * 999 + b"\x01")
    assert p.stack.tcp_send_payload(c.sock, pl, 999, 1, now_us=p.now) == 1
    p.poll()
    s = c.expect("A", seq=0, data=b"\x01")
    assert "ts" in s.opts and python_csum_ok(s)


def test_mixed_bytes_and_payloads_keep_write_order(p):
    c = p.passive_open()
    p.stack.tcp_setsockopt(c.sock, "nodelay", 1)
    body = data_of(3000, 2)
    pl = StaticPayload(body)
    st = p.stack
    expect = b""
    for part in (b"HTTP/1.1 200 OK\r\n\r\n", (pl, 0, 3000), b"odd", (pl, 1, 1500), (pl, 1501, 999), b"!"):
        if isinstance(part, bytes):
            assert st.tcp_send(c.sock, part, now_us=p.now) == len(part)
            expect += part
        else:
            payload, off, n = part
            assert st.tcp_send_payload(c.sock, payload, off, n, now_us=p.now) == n
            expect += body[off:off + n]
    p.poll()
    got = b""
    while len(got) < len(expect):
        segs = c.segs()
        assert segs, (len(got), len(expect))
        for s in segs:
            assert s.rseq == len(got) and s.csum_ok and python_csum_ok(s)
            got += s.payload
        c.send("A", ack=len(got))
    assert got == expect
    # Segments span bytes and payload ranges (the header and the body share the first one).
    assert c.info()["bytes_queued"] == 0


def test_payload_retransmission(p):
    c = p.passive_open()
    data = data_of(3000, 3)
    pl = StaticPayload(data)
    p.stack.tcp_setsockopt(c.sock, "nodelay", 1)
    p.stack.tcp_send(c.sock, b"x", now_us=p.now)            # odd: the payload starts at an odd offset
    p.stack.tcp_send_payload(c.sock, pl, 0, 2000, now_us=p.now)
    p.poll()
    first = c.segs()
    assert [len(s.payload) for s in first] == [1460, 541]
    c.send("A", ack=1460)                                   # the second segment is lost
    p.nothing()
    p.advance(p.stack.next_deadline(p.now) - p.now)         # RTO
    s = c.expect("A", seq=1460)
    assert s.payload == data[1459:2000] and python_csum_ok(s)
    assert c.info()["retransmits"] == 1
    c.send("A", ack=2001)
    p.nothing()


def test_fast_retransmit_of_payload_segment(p):
    c = p.passive_open()
    data = data_of(1460 * 6, 4)
    pl = StaticPayload(data)
    p.stack.tcp_send_payload(c.sock, pl, now_us=p.now)
    p.poll()
    segs = c.segs()
    assert len(segs) == 6
    for _ in range(3):
        c.send("A", ack=0)                                  # three duplicate ACKs
    s = c.segs()[0]
    assert s.rseq == 0 and s.payload == data[:1460] and python_csum_ok(s)


def test_payload_freed_by_python_while_queued(p):
    c = p.passive_open()
    data = data_of(4000, 5)
    pl = StaticPayload(data)
    p.stack.tcp_setsockopt(c.sock, "nodelay", 1)
    p.stack.tcp_send_payload(c.sock, pl, 0, 4000, now_us=p.now)
    p.poll()
    assert len(c.segs()) == 3                                # sent, none acked
    del pl
    gc.collect()
    # Reuse the freed sizes with other bytes: a payload freed too early would show here.
    junk = [StaticPayload(b"\xaa" * 4000) for _ in range(20)]
    c.send("A", ack=1460)
    p.advance(p.stack.next_deadline(p.now) - p.now)          # RTO: resend from the payload
    s = c.segs()[0]
    assert s.rseq == 1460 and s.payload == data[1460:2920] and python_csum_ok(s)
    c.send("A", ack=4000)
    p.poll()
    p.nothing()
    assert c.info()["bytes_queued"] == 0
    del junk


def test_connection_closed_with_payload_queued_releases_it(p):
    c = p.passive_open()
    pl = StaticPayload(data_of(3000, 6))
    p.stack.tcp_send_payload(c.sock, pl, now_us=p.now)
    p.poll()
    c.segs()
    c.send("R", ack=0)                                       # reset by the peer
    assert EV["closed"] in ev_types(p.take_events(c.sock))
    assert c.info()["bytes_queued"] == 0
    with pytest.raises(ConnectionResetError):
        p.stack.tcp_send_payload(c.sock, pl)
    p.stack.tcp_close(c.sock)
    del pl
    gc.collect()


@pytest.fixture(params=["copy", "gather"])
def p256k(request):
    peer = Peer(gather=request.param == "gather", tcp_sndbuf=256 << 10)
    yield peer
    peer.close()


def test_payload_queue_bounds_and_writable(p256k):
    p = p256k
    c = p.passive_open()
    st = p.stack
    pl = StaticPayload(b"p" * (8 << 20))
    # Bound: max(4 MiB, 4 x sndbuf) = 4 MiB for a 256 KiB send buffer.
    assert st.tcp_send_payload(c.sock, pl, 0, 5 << 20, now_us=p.now) == 4 << 20
    assert st.tcp_send_payload(c.sock, pl, 4 << 20, 10, now_us=p.now) == 0
    # The byte buffer is separate: bytes are still accepted.
    assert st.tcp_send(c.sock, b"after", now_us=p.now) == 5
    p.poll()
    sent = sum(len(s.payload) for s in c.segs())
    assert sent == 10 * 1460                                 # initial window
    c.send("A", ack=sent)
    assert EV["writable"] in ev_types(p.take_events(c.sock))
    assert st.tcp_send_payload(c.sock, pl, 4 << 20, 1 << 20, now_us=p.now) == sent
    assert c.info()["bytes_queued"] == (4 << 20) + 5


def test_descriptor_limit(p):
    c = p.passive_open()
    st = p.stack
    pl = StaticPayload(b"abcdefgh")
    # A range continuing the previous one shares its descriptor.
    assert st.tcp_send_payload(c.sock, pl, 0, 3, now_us=p.now) == 3
    assert st.tcp_send_payload(c.sock, pl, 3, 5, now_us=p.now) == 5
    n = 1
    # Alternating bytes and payload ranges take a descriptor each; at the limit a new one is refused.
    while True:
        if not st.tcp_send(c.sock, b"-", now_us=p.now):
            break
        n += 1
        if not st.tcp_send_payload(c.sock, pl, 0, 3, now_us=p.now):
            break
        n += 1
        assert n < 100
    assert n == 16
    # The last descriptor holds bytes: more bytes still merge into it.
    assert st.tcp_send(c.sock, b"+", now_us=p.now) == 1
    p.poll()
    assert drain(c) == b"abcdefgh" + b"-abc" * 7 + b"-+"


def test_payload_errors(p):
    c = p.passive_open()
    st = p.stack
    pl = StaticPayload(b"0123456789")
    with pytest.raises(ValueError):
        st.tcp_send_payload(c.sock, pl, 5, 6)
    from aiorusty._rusty import lib
    assert lib.rusty_tcp_send_payload(st._ptr, c.sock, pl._ptr, 11, 0, p.now) == -errno.EINVAL
    assert lib.rusty_tcp_send_payload(st._ptr, c.sock, pl._ptr, 4, 7, p.now) == -errno.EINVAL
    st.tcp_shutdown(c.sock, now_us=p.now)
    with pytest.raises(BrokenPipeError):
        st.tcp_send_payload(c.sock, pl)


def test_payload_then_fin(p):
    c = p.passive_open()
    data = data_of(2000, 7)
    st = p.stack
    st.tcp_send_payload(c.sock, StaticPayload(data), now_us=p.now)
    st.tcp_shutdown(c.sock, now_us=p.now)
    gc.collect()
    p.poll()
    segs = c.segs()
    assert segs[-1].flags & 0x01 and b"".join(s.payload for s in segs) == data
    c.send("A", ack=2001)
    assert c.state() == "FIN-WAIT-2"


def test_static_payload_object():
    raw = data_of(1001, 8)
    pl = StaticPayload(raw)
    assert len(pl) == 1001 and bytes(pl) == raw and pl == raw
    assert pl.memoryview().tobytes() == raw and pl.memoryview().readonly
    assert bytes(StaticPayload(bytearray(raw))) == raw
    assert bytes(StaticPayload(memoryview(raw)[::2])) == raw[::2]       # non-contiguous is copied
    import io
    assert bytes(StaticPayload(io.BytesIO(raw))) == raw
    assert len(StaticPayload(b"")) == 0
    with pytest.raises(TypeError):
        StaticPayload("text")


def test_static_payload_from_file(tmp_path):
    raw = data_of(70000, 9)
    f = tmp_path / "page.bin"
    f.write_bytes(raw)
    assert bytes(StaticPayload.from_file(f)) == raw


def test_stack_freed_with_payload_queued():
    # The last reference is the send queue's: freeing the stack releases it (ASan
    # builds catch a double free or a leak of the C payload's memory here).
    p = Peer()
    c = p.passive_open()
    pl = StaticPayload(data_of(3000, 10))
    p.stack.tcp_send_payload(c.sock, pl, now_us=p.now)
    p.poll()
    assert len(c.segs()) == 2
    del pl
    gc.collect()
    p.close()
