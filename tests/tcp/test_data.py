"""Data transfer (RFC 9293 3.8, 3.10.7.4 seventh check): in order, out of order
with several holes, receive window and SWS avoidance, zero window and persist
probes, send-buffer limits."""

import pytest

from _script import EV, Peer, ev_types


@pytest.fixture
def p():
    peer = Peer()
    yield peer
    peer.close()


def test_in_order_segments_and_events(p):
    c = p.passive_open()
    c.send("A", b"abc")
    c.send("A", b"def")
    assert EV["readable"] in ev_types(p.take_events(c.sock))
    assert p.stack.tcp_recv(c.sock, 4) == b"abcd"
    assert p.stack.tcp_recv(c.sock) == b"ef"
    assert p.stack.tcp_recv(c.sock) is None


def test_out_of_order_several_holes(p):
    c = p.passive_open()
    # segments 1..5 of 100 bytes; deliver 2, 4, 5 first (holes at 1 and 3)
    data = bytes(range(256)) * 2
    chunks = [data[i * 100:(i + 1) * 100] for i in range(5)]
    for i in (1, 3, 4):
        c.send("A", chunks[i], seq=i * 100, advance=False)
        c.expect("A", ack=0)                # immediate duplicate ACK per OOO segment
    assert p.stack.tcp_recv(c.sock) is None
    c.send("A", chunks[0], seq=0, advance=False)
    c.expect("A", ack=200)                  # hole filled: ACK at once
    c.send("A", chunks[2], seq=200, advance=False)
    c.expect("A", ack=500)
    assert p.stack.tcp_recv(c.sock, 1000) == data[:500]
    assert p.stack.stats()["tcp_ooo_segments"] == 3


def test_overlapping_and_duplicate_segments(p):
    c = p.passive_open()
    c.send("A", b"0123456789", seq=0, advance=False)
    c.send("A", b"56789ABCDE", seq=5, advance=False)   # overlaps the end: 5 new bytes
    p.nothing()                             # not a full-sized segment: delayed ACK
    p.advance(40_000)
    c.expect("A", ack=15)
    c.send("A", b"0123", seq=0, advance=False)          # old duplicate: ACK
    c.expect("A", ack=15)
    assert p.stack.tcp_recv(c.sock) == b"0123456789ABCDE"


def test_ooo_fin_waits_for_hole(p):
    c = p.passive_open()
    c.send("FA", b"world", seq=5, advance=False)
    c.expect("A", ack=0)
    assert c.state() == "ESTABLISHED"
    c.send("A", b"hello", seq=0, advance=False)
    c.expect("A", ack=11)
    assert c.state() == "CLOSE-WAIT"
    assert p.stack.tcp_recv(c.sock) == b"helloworld"
    assert p.stack.tcp_recv(c.sock) == b""


def test_receive_window_and_sws_avoidance():
    p = Peer(tcp_rcvbuf=8192)
    try:
        c = p.passive_open()
        assert c.synack.window == 8192
        c.send("A", b"x" * 1460)
        c.send("A", b"x" * 1460)
        s = c.expect("A", ack=2920)
        assert s.window == 8192 - 2920
        # Reading a little does not advertise a tiny increase (RFC 1122 4.2.3.3)...
        p.stack.tcp_recv(c.sock, 100)
        p.poll()
        p.nothing()
        # ...reading enough for a full segment does: a window update.
        p.stack.tcp_recv(c.sock, 2000)
        p.poll()
        s = c.expect("A", ack=2920)
        assert s.window == 8192 - 820       # 820 bytes still unread
        # Data beyond the window is trimmed.
        p.stack.tcp_recv(c.sock, 10000)
        for _ in range(6):
            c.send("A", b"y" * 1460)
        p.advance(40_000)
        assert c.segs()[-1].rack == 2920 + 8192 and c.info()["rcv_wnd"] == 0
        assert len(p.stack.tcp_recv(c.sock, 1 << 20)) == 8192
    finally:
        p.close()


def test_send_respects_peer_window_and_persist(p):
    c = p.passive_open(window=3000)
    p.stack.tcp_send(c.sock, b"z" * 5000, p.now)
    p.poll()
    segs = c.segs()
    assert [(s.rseq, len(s.payload)) for s in segs] == [(0, 1460), (1460, 1460)]  # 80 left of the window: SWS
    c.send("A", ack=2920, window=0)          # all acked, zero window
    p.nothing()
    assert c.info()["snd_wnd"] == 0
    # persist timer: probes with back-off, each answered by our zero window
    t0 = p.now
    times = []
    for _ in range(3):
        p.advance(p.stack.next_deadline(p.now) - p.now)
        (probe,) = c.segs()
        assert probe.rseq == 2919 and probe.payload == b""   # <SEQ=SND.UNA-1>
        times.append(p.now - t0)
        c.send("A", ack=2920, window=0)
        p.nothing()
    assert times[1] - times[0] > times[0] - 0 and times[2] - times[1] > times[1] - times[0]
    # the window opens: the rest goes out
    c.send("A", ack=2920, window=65535)
    c.expect("A", seq=2920, length=1460)
    c.send("A", ack=4380, window=65535)     # Nagle held the short tail until this ACK
    c.expect("A", seq=4380, length=620)
    assert c.state() == "ESTABLISHED"


def test_writable_only_after_a_send_that_was_refused_some():
    """WRITABLE is edge-triggered on a refused send (as EPOLLOUT under EPOLLET): the ACK
    of data queued in full reports nothing (an event per request otherwise), the first
    ACK after a short send reports room once, and later ACKs do not repeat it."""
    p = Peer(tcp_sndbuf=4096)
    try:
        c = p.passive_open(window=65535)
        p.poll()
        assert ev_types(p.take_events(c.sock)) == [EV["writable"]]    # accepted: room to send
        assert p.stack.tcp_send(c.sock, b"q" * 100, p.now) == 100      # taken whole
        p.poll()
        c.send("A", ack=100)
        assert EV["writable"] not in ev_types(p.take_events(c.sock))
        assert p.stack.tcp_send(c.sock, b"a" * 6000, p.now) == 4096    # refused some
        p.poll()
        sent = sum(len(s.payload) for s in c.segs())
        c.send("A", ack=100 + 1460)
        assert ev_types(p.take_events(c.sock)).count(EV["writable"]) == 1
        c.send("A", ack=100 + sent)
        assert EV["writable"] not in ev_types(p.take_events(c.sock)), "reported twice for one refusal"
    finally:
        p.close()


def test_send_buffer_full_eagain_then_writable():
    p = Peer(tcp_sndbuf=4096)
    try:
        c = p.passive_open(window=1000)
        assert p.stack.tcp_send(c.sock, b"a" * 10000, p.now) == 4096
        assert p.stack.tcp_send(c.sock, b"b", p.now) == 0       # EAGAIN
        p.poll()
        (s,) = c.segs()
        assert len(s.payload) == 1000
        p.take_events()
        c.send("A", ack=1000, window=1000)
        assert EV["writable"] in ev_types(p.take_events(c.sock))
        assert p.stack.tcp_send(c.sock, b"b" * 2000, p.now) == 1000
    finally:
        p.close()


def test_bulk_in_order_large():
    p = Peer()
    try:
        c = p.passive_open()
        data = bytes(i % 251 for i in range(200_000))
        got = bytearray()
        for off in range(0, len(data), 1460):
            c.send("A", data[off:off + 1460])
            got += p.stack.tcp_recv(c.sock, 1 << 20) or b""
        c.segs()
        assert bytes(got) == data
    finally:
        p.close()


def test_zero_window_probing_lasts_while_peer_answers(p):
    """RFC 1122 4.2.2.17: a receiver that keeps answering probes with a zero window
    keeps the connection open far beyond the retransmission limit."""
    c = p.passive_open()
    p.stack.tcp_setsockopt(c.sock, "retries", 3)
    p.stack.tcp_send(c.sock, b"z" * 100, p.now)
    c.send("A", ack=0, window=0)
    p.poll()
    c.segs()
    for _ in range(10):
        p.advance(p.stack.next_deadline(p.now) - p.now)
        (probe,) = c.segs()
        assert probe.payload == b""
        c.send("A", ack=0, window=0)
    assert c.state() == "ESTABLISHED"
    # now the peer goes silent: after `retries` unanswered probes, ETIMEDOUT
    for _ in range(4):
        p.advance(p.stack.next_deadline(p.now) - p.now)
    assert c.state() == "CLOSED"


def test_zero_receive_window_drops_data_keeps_acks(p):
    q = Peer(tcp_rcvbuf=4096)
    try:
        c = q.passive_open()
        q.stack.tcp_send(c.sock, b"out", q.now)
        q.poll()
        c.segs()
        for _ in range(3):
            c.send("A", b"x" * 1460)
        q.advance(40_000)
        assert c.segs()[-1].window == 0         # the third segment was trimmed to fill the ring
        assert c.info()["rcv_nxt"] - c.peer_iss - 1 == 4096
        c.send("A", b"y" * 100, seq=4096, ack=3, advance=False)   # RCV.WND = 0: data dropped, ACK taken
        c.expect("A", ack=4096, window=0)
        assert c.info()["snd_una"] == c.info()["snd_nxt"]
        assert len(q.stack.tcp_recv(c.sock, 10000)) == 4096
    finally:
        q.close()


@pytest.mark.parametrize("peer_iss", [5000, 0xFFF00000, 0xFFFF0000, 0x80001000])
def test_active_open_advertises_the_ring_it_has(peer_iss):
    """After an active open the window is measured in the peer's sequence space: a
    full ring advertises 0. (Regression: the right edge our SYN offered stayed where
    rcv_nxt was before the peer's ISN was known; for half of all ISNs the stack then
    kept advertising 0xffff over a full ring, and the peer's segments fell off its
    end - bulk transfers to the load generator retransmitted and stalled.)"""
    p = Peer(tcp_rcvbuf=8192)
    try:
        c = p.active_open(iss=peer_iss)
        data = bytes(i % 251 for i in range(8192))
        for off in range(0, len(data), 1024):
            c.send("A", data[off:off + 1024])
        p.advance(40_000)                       # past the delayed ACK
        last = c.segs()[-1]
        assert last.rack == 8192 and last.window == 0, last
        assert p.stack.tcp_recv(c.sock, 1 << 20) == data
        assert p.stack.stats()["tcp_rx_past_window"] == 0
    finally:
        p.close()
