"""Fast retransmit and fast recovery (RFC 5681 3.2) with NewReno partial ACKs
(RFC 6582); slow start and congestion avoidance (RFC 5681 3.1); IW10 (RFC 6928);
restart after idle (RFC 5681 4.1)."""

import pytest

from _script import Peer

MSS = 1460


@pytest.fixture
def p():
    peer = Peer()
    yield peer
    peer.close()


def test_initial_window_10(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"i" * (20 * MSS), p.now)
    p.poll()
    assert len(c.segs()) == 10
    assert c.info()["cwnd"] == 10 * MSS


def test_slow_start_growth(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"s" * (40 * MSS), p.now)
    p.poll()
    assert len(c.segs()) == 10
    c.send("A", ack=2 * MSS)                  # acks 2 segments: cwnd += 2 MSS, 4 go out
    assert len(c.segs()) == 4
    assert c.info()["cwnd"] == 12 * MSS


def test_three_dupacks_fast_retransmit_and_newreno_partial_ack(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"f" * (10 * MSS), p.now)
    p.poll()
    assert len(c.segs()) == 10
    # segments 0 and 3 lost: the peer acks 0 repeatedly
    for _ in range(2):
        c.send("A", ack=0)
        p.nothing()
    c.send("A", ack=0)                        # third duplicate ACK
    (rtx,) = c.segs()
    assert rtx.rseq == 0 and len(rtx.payload) == MSS
    st = p.stack.stats()
    assert st["tcp_fast_retransmits"] == 1
    info = c.info()
    assert info["ssthresh"] == 5 * MSS and info["cwnd"] == 8 * MSS  # ssthresh + 3*MSS
    # partial ACK (up to the second hole): retransmit the next hole at once
    c.send("A", ack=3 * MSS)
    segs = c.segs()
    assert segs[0].rseq == 3 * MSS
    # full ACK: leave recovery with cwnd = min(ssthresh, flight + MSS)
    c.send("A", ack=10 * MSS)
    info = c.info()
    assert info["cwnd"] <= 5 * MSS
    assert p.stack.stats()["tcp_fast_retransmits"] == 1


def test_dupacks_need_outstanding_data_and_same_window(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"d" * (4 * MSS), p.now)
    p.poll()
    c.segs()
    for w in (60000, 50000, 40000):           # window changes: window updates, not dupacks
        c.send("A", ack=0, window=w)
    p.nothing()
    assert p.stack.stats()["tcp_fast_retransmits"] == 0


def test_congestion_avoidance_linear(p):
    c = p.passive_open()
    # force congestion avoidance after an RTO
    p.stack.tcp_send(c.sock, b"c" * (200 * MSS), p.now)
    p.poll()
    c.segs()
    p.advance(200_000)
    c.segs()
    info = c.info()
    assert info["cwnd"] == MSS and info["ssthresh"] == 5 * MSS
    acked = 0
    # slow start back to ssthresh, then +1 MSS per cwnd of data
    while c.info()["cwnd"] < 5 * MSS:
        acked += MSS
        c.send("A", ack=acked)
        c.segs()
    cw = c.info()["cwnd"]
    for _ in range(cw // MSS):
        acked += MSS
        c.send("A", ack=acked)
        c.segs()
    assert c.info()["cwnd"] == cw + MSS


def test_restart_after_idle(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"x" * (30 * MSS), p.now)
    p.poll()
    acked = 0
    for _ in range(20):
        segs = c.segs()
        if not segs:
            break
        acked = segs[-1].rseq + len(segs[-1].payload)
        c.send("A", ack=acked)
    assert c.info()["cwnd"] > 10 * MSS
    c.segs()
    p.advance(5_000_000)                      # idle much longer than the RTO
    p.stack.tcp_send(c.sock, b"y" * (30 * MSS), p.now)
    p.poll()
    assert len(c.segs()) == 10                # restart window = IW


def test_limited_transmit(p):
    """RFC 3042: the first two duplicate ACKs each release one new segment."""
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"l" * (14 * MSS), p.now)
    p.poll()
    assert len(c.segs()) == 10
    c.send("A", ack=0)
    c.expect("A", seq=10 * MSS, length=MSS)
    c.send("A", ack=0)
    c.expect("A", seq=11 * MSS, length=MSS)
    c.send("A", ack=0)                        # third: fast retransmit of the first
    segs = c.segs()
    assert segs[0].rseq == 0
