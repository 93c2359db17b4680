"""Retransmission timer (RFC 6298): RTO from SRTT/RTTVAR with Linux's 200 ms floor,
exponential back-off, Karn's rule, giving up with ETIMEDOUT."""

import errno

import pytest

from _script import EV, Peer


@pytest.fixture
def p():
    peer = Peer()
    yield peer
    peer.close()


def first_rto(p, c):
    return c.info()["rto_us"]


def test_rto_backoff_and_give_up(p):
    c = p.passive_open()
    p.stack.tcp_setsockopt(c.sock, "retries", 4)
    p.stack.tcp_send(c.sock, b"hello", p.now)
    p.poll()
    c.expect("A", seq=0, data=b"hello")
    rto = first_rto(p, c)
    assert rto == 200_000                    # RTT ~0 here: the 200 ms floor
    t0 = p.now
    times = []
    for _ in range(4):
        p.advance(p.stack.next_deadline(p.now) - p.now)
        c.expect("A", seq=0, data=b"hello")
        times.append(p.now - t0)
    assert times == [200_000, 600_000, 1_400_000, 3_000_000]   # doubling
    assert c.info()["retransmits"] == 4
    p.advance(p.stack.next_deadline(p.now) - p.now)
    p.nothing()
    evs = p.take_events(c.sock)
    assert (evs[-1][1], evs[-1][3]) == (EV["closed"], -errno.ETIMEDOUT)
    with pytest.raises(TimeoutError):
        p.stack.tcp_recv(c.sock)


def test_rto_max_60s(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"x", p.now)
    p.poll()
    c.segs()
    for _ in range(12):
        p.advance(p.stack.next_deadline(p.now) - p.now)
        c.segs()
    assert c.info()["rto_us"] == 60_000_000


def test_ack_after_retransmit_restores_and_continues(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"a" * 3000, p.now)
    p.poll()
    assert [len(x.payload) for x in c.segs()] == [1460, 1460]   # Nagle holds the 80-byte tail
    p.advance(200_000)
    # RTO: cwnd = 1 MSS, go back to SND.UNA: one segment
    (s,) = c.segs()
    assert s.rseq == 0 and len(s.payload) == 1460
    assert c.info()["cwnd"] == 1460
    c.send("A", ack=1460)
    assert [x.rseq for x in c.segs()] == [1460]
    c.send("A", ack=2920)
    assert [(x.rseq, len(x.payload)) for x in c.segs()] == [(2920, 80)]
    c.send("A", ack=3000)
    p.nothing()
    assert c.info()["snd_una"] == c.info()["snd_nxt"]


def test_karn_no_sample_from_retransmitted(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"k", p.now)
    p.poll()
    c.segs()
    srtt0 = c.info()["srtt_us"]
    p.advance(200_000)
    c.segs()                                 # retransmitted
    p.advance(50_000)
    c.send("A", ack=1)                       # ambiguous ACK: no RTT sample
    assert c.info()["srtt_us"] == srtt0
    # a fresh segment, acked 30 ms later, is timed
    p.stack.tcp_send(c.sock, b"m", p.now)
    p.poll()
    c.segs()
    p.advance(30_000)
    c.send("A", ack=2)
    info = c.info()
    assert info["srtt_us"] != srtt0
    assert info["rto_us"] >= 200_000


def test_rtt_estimator_rfc6298(p):
    c = p.passive_open()
    # Handshake measured ~0; feed 100 ms samples and watch SRTT converge.
    for i in range(30):
        p.stack.tcp_send(c.sock, b"r", p.now)
        p.poll()
        c.segs()
        p.advance(100_000)
        c.segs()
        c.send("A", ack=i + 1)
        c.segs()
    info = c.info()
    assert 95_000 <= info["srtt_us"] <= 100_000
    assert info["rto_us"] >= info["srtt_us"]


def test_peer_vanishes_etimedout_active(p):
    c = p.active_open()
    p.stack.tcp_send(c.sock, b"ping", p.now)
    p.poll()
    c.segs()
    # default 15 retries; with the 60 s cap this is ~15 minutes of virtual time
    p.advance(2 * 3600 * 1_000_000)
    evs = p.take_events(c.sock)
    assert (evs[-1][1], evs[-1][3]) == (EV["closed"], -errno.ETIMEDOUT)
    assert c.info()["retransmits"] == 15
    assert p.stack.stats()["tcp_timeouts"] >= 1
