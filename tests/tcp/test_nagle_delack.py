"""Nagle (RFC 1122 4.2.3.4) with TCP_NODELAY, and delayed ACKs (RFC 1122 4.2.3.2,
RFC 5681 4.2): every second full-sized segment or a 40 ms timer."""

import socket

import pytest

from _script import Peer


@pytest.fixture
def p():
    peer = Peer()
    yield peer
    peer.close()


def test_nagle_holds_small_segments_while_unacked(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"a", p.now)
    p.poll()
    c.expect("A", seq=0, data=b"a")          # nothing outstanding: goes at once
    p.stack.tcp_send(c.sock, b"b", p.now)
    p.poll()
    p.stack.tcp_send(c.sock, b"c", p.now)
    p.poll()
    p.nothing()                              # held: "a" is unacknowledged
    c.send("A", ack=1)
    c.expect("A", seq=1, data=b"bc")         # coalesced


def test_nodelay_sends_at_once(p):
    c = p.passive_open()
    p.stack.tcp_setsockopt(c.sock, socket.TCP_NODELAY, 1)
    for ch in (b"a", b"b", b"c"):
        p.stack.tcp_send(c.sock, ch, p.now)
        p.poll()
        c.expect("A", data=ch)


def test_full_segments_not_held_by_nagle(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"a", p.now)
    p.poll()
    c.segs()
    p.stack.tcp_send(c.sock, b"x" * 1460, p.now)
    p.poll()
    c.expect("A", seq=1, length=1460)


def test_delayed_ack_timer_40ms(p):
    c = p.passive_open()
    c.send("A", b"x" * 100)
    p.nothing()
    p.advance(39_999)
    p.nothing()
    p.advance(1)
    c.expect("A", ack=100)


def test_ack_every_second_full_segment(p):
    c = p.passive_open()
    c.send("A", b"x" * 1460)
    p.nothing()
    c.send("A", b"x" * 1460)
    c.expect("A", ack=2920)
    c.send("A", b"x" * 1460)
    p.nothing()
    c.send("A", b"x" * 1460)
    c.expect("A", ack=5840)


def test_ack_piggybacks_on_data(p):
    c = p.passive_open()
    c.send("A", b"request")
    p.stack.tcp_recv(c.sock)
    p.stack.tcp_send(c.sock, b"response", p.now)
    p.poll()
    c.expect("A", ack=7, data=b"response")
    p.advance(100_000)
    p.nothing()                              # the delayed ACK was cancelled


def test_sender_sws_no_tiny_segments_into_small_window(p):
    c = p.passive_open(window=65535)
    p.stack.tcp_send(c.sock, b"q" * 1460, p.now)
    p.poll()
    c.segs()
    p.stack.tcp_send(c.sock, b"w" * 5000, p.now)
    c.send("A", ack=1460, window=100)        # peer's window shrank to 100: wait (SWS)
    p.nothing()
    c.send("A", ack=1460, window=20000)
    segs = c.segs()
    assert segs and all(len(s.payload) == 1460 for s in segs)


def test_persist_override_sends_into_small_window(p):
    """RFC 1122 4.2.3.4 (d): a window that stays below a segment is used after the
    persist timeout instead of stalling forever."""
    c = p.passive_open(window=65535)
    p.stack.tcp_send(c.sock, b"q" * 1460, p.now)
    p.poll()
    c.segs()
    p.stack.tcp_send(c.sock, b"w" * 5000, p.now)
    c.send("A", ack=1460, window=100)
    p.nothing()
    p.advance(p.stack.next_deadline(p.now) - p.now)
    c.expect("PA", seq=1460, length=100)
