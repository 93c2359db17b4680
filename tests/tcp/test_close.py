"""Closing (RFC 9293 3.6, 3.10.4, 3.10.7.4 eighth check): active, passive,
simultaneous close, half-close, TIME-WAIT expiry and reuse, FIN-WAIT-2 orphans."""

import errno

import pytest

from _script import EV, FIN, ACK, Peer, ev_types, tcp_options

MSL = 2_000_000     # the harness's tcp_msl_us


@pytest.fixture
def p():
    peer = Peer()
    yield peer
    peer.close()


def test_active_close_time_wait_expiry(p):
    c = p.passive_open()
    p.stack.tcp_close(c.sock, p.now)
    p.poll()
    c.expect("FA", seq=0, ack=0)
    assert p.stack.stats()["tcp_conns"] == 1
    c.send("A", ack=1)                  # FIN-WAIT-2
    p.nothing()
    c.send("FA", ack=1)                 # their FIN: TIME-WAIT, ACK it
    c.expect("A", seq=1, ack=1)
    # A retransmitted FIN in TIME-WAIT is ACKed again and restarts 2*MSL.
    p.advance(MSL)
    c.send("FA", seq=0, ack=1)
    c.expect("A", seq=1, ack=1)
    p.advance(2 * MSL - 1)
    assert p.stack.stats()["tcp_conns"] == 1
    p.advance(1)
    assert p.stack.stats()["tcp_conns"] == 0
    p.nothing()
    # Gone: a segment now draws a RST.
    c.send("A", ack=1)
    c.expect("R")


def test_passive_close(p):
    c = p.passive_open()
    c.send("FA")
    c.expect("A", seq=0, ack=1)
    assert c.state() == "CLOSE-WAIT"
    assert p.stack.tcp_recv(c.sock) == b""
    evs = ev_types(p.take_events(c.sock))
    assert EV["eof"] in evs
    p.stack.tcp_send(c.sock, b"bye", p.now)     # half-close: we can still send
    p.poll()
    c.expect("A", seq=0, data=b"bye")
    p.stack.tcp_close(c.sock, p.now)
    p.poll()
    c.expect("FA", seq=3, ack=1)
    c.send("A", ack=4)
    assert p.stack.stats()["tcp_conns"] == 0
    p.nothing()


def test_simultaneous_close(p):
    c = p.passive_open()
    p.stack.tcp_close(c.sock, p.now)
    p.poll()
    c.expect("FA", seq=0, ack=0)
    c.send("FA", ack=0)                 # their FIN crosses ours: CLOSING
    c.expect("A", seq=1, ack=1)
    c.send("A", ack=1)                  # our FIN acked: TIME-WAIT
    p.nothing()
    assert p.stack.stats()["tcp_conns"] == 1
    p.advance(2 * MSL)
    assert p.stack.stats()["tcp_conns"] == 0


def test_fin_with_ack_of_our_fin_goes_time_wait(p):
    c = p.passive_open()
    p.stack.tcp_shutdown(c.sock, 1, p.now)
    p.poll()
    c.expect("FA", seq=0)
    c.send("FA", ack=1)                 # FIN-WAIT-1 -> TIME-WAIT directly
    c.expect("A", seq=1, ack=1)
    assert c.state() == "TIME-WAIT"


def test_half_close_then_receive(p):
    c = p.passive_open()
    p.stack.tcp_shutdown(c.sock, 1, p.now)
    p.poll()
    c.expect("FA", seq=0)
    c.send("A", ack=1)
    assert c.state() == "FIN-WAIT-2"
    with pytest.raises(BrokenPipeError):
        p.stack.tcp_send(c.sock, b"x", p.now)
    c.send("A", b"more data")
    p.advance(40_000)
    c.expect("A", ack=9)
    assert p.stack.tcp_recv(c.sock) == b"more data"
    c.send("FA")
    c.expect("A", ack=10)
    assert p.stack.tcp_recv(c.sock) == b""


def test_fin_after_queued_data(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"a" * 3000, p.now)
    p.stack.tcp_close(c.sock, p.now)
    p.poll()
    segs = c.segs()
    assert [(s.rseq, len(s.payload), s.flags & FIN) for s in segs] == [(0, 1460, 0), (1460, 1460, 0), (2920, 80, FIN)]


def test_close_with_unread_data_sends_rst(p):
    c = p.passive_open()
    c.send("A", b"unread")
    p.stack.tcp_close(c.sock, p.now)
    p.poll()
    c.expect("RA", seq=0)
    assert p.stack.stats()["tcp_conns"] == 0


def test_orphan_fin_wait_2_times_out(p):
    c = p.passive_open()
    p.stack.tcp_close(c.sock, p.now)
    p.poll()
    c.expect("FA")
    c.send("A", ack=1)
    p.advance(MSL - 1)
    assert p.stack.stats()["tcp_conns"] == 1
    p.advance(1)
    assert p.stack.stats()["tcp_conns"] == 0


def test_data_after_close_gets_rst(p):
    c = p.passive_open()
    p.stack.tcp_close(c.sock, p.now)
    p.poll()
    c.expect("FA")
    c.send("A", b"late", ack=1)
    c.expect("RA")
    assert p.stack.stats()["tcp_conns"] == 0


def test_last_ack_retransmits_fin(p):
    c = p.passive_open()
    c.send("FA")
    c.expect("A", ack=1)
    p.stack.tcp_close(c.sock, p.now)
    p.poll()
    c.expect("FA", seq=0, ack=1)
    p.advance(1_000_000)                # initial RTO (no RTT sample yet... one from the handshake)
    segs = c.segs()
    assert segs and all(s.flags & FIN for s in segs)


def test_time_wait_reuse_by_newer_syn(p):
    lsock = p.listen(80)
    c = p.passive_open(80, peer_port=40500, listener=lsock,
                       options=tcp_options(mss=1460, ts=(100, 0)))
    assert c.synack.opts.get("ts")
    c.ts = (101, c.synack.opts["ts"][0])
    p.stack.tcp_close(c.sock, p.now)
    p.poll()
    c.expect("FA")
    c.ts = (102, 0)
    c.send("FA", ack=1)
    c.expect("A")
    # An old SYN (older timestamp) is not a new connection: it gets an ACK.
    c.inject_abs(c.peer_iss + 50_000, 0, "S", options=tcp_options(mss=1460, ts=(50, 0)))
    (s,) = c.segs()
    assert s.flags == ACK
    # A SYN with a newer timestamp reopens the tuple.
    c.inject_abs(c.peer_iss + 100_000, 0, "S", options=tcp_options(mss=1460, ts=(1000, 0)))
    (sa,) = p.segments()
    assert sa.flags == 0x12 and sa.ack == c.peer_iss + 100_001
    assert ((sa.seq - c.stack_iss) & 0xFFFFFFFF) < 0x80000000      # ISN above the old incarnation's


def test_closed_event_after_rst_and_handle_lifetime(p):
    c = p.passive_open()
    c.send("RA")
    evs = p.take_events(c.sock)
    assert evs[-1][1] == EV["closed"] and evs[-1][3] == -errno.ECONNRESET
    with pytest.raises(ConnectionResetError):
        p.stack.tcp_recv(c.sock)
    assert p.stack.tcp_recv(c.sock) == b""      # reported once, then EOF like a kernel socket
    with pytest.raises(BrokenPipeError):
        p.stack.tcp_send(c.sock, b"x", p.now)
    p.stack.tcp_close(c.sock)
    assert p.stack.stats()["tcp_conns"] == 0
    with pytest.raises(OSError) as e:
        p.stack.tcp_recv(c.sock)
    assert e.value.errno == errno.EBADF


def _to_state(p, c, state):
    """Drive an accepted connection (handle kept) into `state`; returns the peer's ack offset."""
    if state == "ESTABLISHED":
        return 0
    if state == "CLOSE-WAIT":
        c.send("FA")
        c.segs()
        return 0
    if state == "LAST-ACK":
        c.send("FA")
        c.segs()
        p.stack.tcp_shutdown(c.sock, 1, p.now)
        p.poll()
        c.segs()
        return 0
    p.stack.tcp_shutdown(c.sock, 1, p.now)
    p.poll()
    c.segs()
    if state == "FIN-WAIT-1":
        return 0
    if state == "FIN-WAIT-2":
        c.send("A", ack=1)
        return 1
    if state == "CLOSING":
        c.send("FA", ack=0)
        c.segs()
        return 0
    if state == "TIME-WAIT":
        c.send("FA", ack=1)
        c.segs()
        return 1
    raise AssertionError(state)


@pytest.mark.parametrize("state,err", [
    ("ESTABLISHED", -errno.ECONNRESET), ("FIN-WAIT-1", -errno.ECONNRESET), ("FIN-WAIT-2", -errno.ECONNRESET),
    ("CLOSE-WAIT", -errno.ECONNRESET), ("CLOSING", 0), ("LAST-ACK", 0), ("TIME-WAIT", 0),
])
def test_rst_in_each_state(p, state, err):
    c = p.passive_open()
    ack = _to_state(p, c, state)
    assert c.state() == state
    p.take_events()
    c.send("R", ack=ack, advance=False)
    p.nothing()
    assert c.state() == "CLOSED"
    evs = p.take_events(c.sock)
    assert (evs[-1][1], evs[-1][3]) == (EV["closed"], err)
    p.stack.tcp_close(c.sock)
    assert p.stack.stats()["tcp_conns"] == 0


def test_data_in_fin_wait_1(p):
    c = p.passive_open()
    p.stack.tcp_shutdown(c.sock, 1, p.now)
    p.poll()
    c.expect("FA", seq=0)
    c.send("A", b"still talking", ack=0)     # our FIN not yet acked
    assert c.state() == "FIN-WAIT-1"
    p.advance(40_000)
    c.expect("A", seq=1, ack=13)
    assert p.stack.tcp_recv(c.sock) == b"still talking"
