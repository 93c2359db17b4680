"""Resets and RFC 5961 blind-attack mitigations (RFC 9293 3.10.7.4 second, fourth,
fifth checks): exact RST closes, in-window RST/SYN and out-of-range ACK draw a
challenge ACK, out-of-window RST is ignored."""

import errno

import pytest

from _script import EV, Peer


@pytest.fixture
def p():
    peer = Peer()
    yield peer
    peer.close()


def challenges(p):
    return p.stack.stats()["tcp_challenge_acks"]


def test_exact_rst_resets(p):
    c = p.passive_open()
    c.send("R", ack=0)
    p.nothing()
    evs = p.take_events(c.sock)
    assert (evs[-1][1], evs[-1][3]) == (EV["closed"], -errno.ECONNRESET)
    assert c.state() == "CLOSED"
    assert p.stack.stats()["tcp_rst_rx"] == 1


def test_in_window_rst_gets_challenge_ack(p):
    c = p.passive_open()
    c.send("R", seq=100, advance=False)
    c.expect("A", seq=0, ack=0)
    assert c.state() == "ESTABLISHED" and challenges(p) == 1


def test_out_of_window_rst_ignored(p):
    c = p.passive_open()
    c.send("R", seq=10_000_000, advance=False)
    p.nothing()
    c.send("R", seq=-5, advance=False)
    p.nothing()
    assert c.state() == "ESTABLISHED" and challenges(p) == 0


def test_syn_in_established_gets_challenge_ack(p):
    c = p.passive_open()
    c.send("S", seq=0, advance=False)
    c.expect("A", seq=0, ack=0)
    c.send("S", seq=77777, advance=False)        # any sequence number
    c.expect("A", seq=0, ack=0)
    assert c.state() == "ESTABLISHED" and challenges(p) >= 1


def test_ack_of_unsent_data_gets_challenge_ack(p):
    c = p.passive_open()
    c.send("A", ack=5000, advance=False)        # SEG.ACK > SND.NXT
    c.expect("A", seq=0, ack=0)
    assert challenges(p) == 1


def test_ack_too_old_gets_challenge_ack(p):
    c = p.passive_open(window=1000)
    c.send("A", ack=-100_000, advance=False)    # below SND.UNA - MAX.SND.WND
    c.expect("A", seq=0, ack=0)
    assert challenges(p) == 1


def test_rst_in_syn_received_returns_to_listen(p):
    lsock = p.listen(80)
    from _script import Conn
    c = Conn(p, 80, 40000, peer_iss=1)
    c.inject_abs(1, 0, "S")
    (sa,) = p.segments()
    c.stack_iss = sa.seq
    c.send("R", ack=0)
    p.nothing()
    assert p.stack.stats()["tcp_conns"] == 0
    assert p.stack.tcp_accept(lsock) is None
    # the listener still works
    p.passive_open(80, peer_port=40001, listener=lsock)


def test_abort_sends_rst(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"x" * 10, p.now)
    p.poll()
    c.expect("A", data=b"x" * 10)
    p.stack.tcp_abort(c.sock, p.now)
    p.poll()
    c.expect("RA", seq=10, ack=0)
    assert p.stack.stats()["tcp_conns"] == 0
    assert p.stack.stats()["tcp_rst_tx"] == 1


def test_rst_mid_transfer_econnreset(p):
    c = p.passive_open()
    p.stack.tcp_send(c.sock, b"y" * 20000, p.now)
    p.poll()
    assert len(c.segs()) == 10              # IW10
    c.send("RA", ack=1460)                  # RST with the sequence we are at
    evs = p.take_events(c.sock)
    assert (evs[-1][1], evs[-1][3]) == (EV["closed"], -errno.ECONNRESET)
    with pytest.raises(ConnectionResetError):
        p.stack.tcp_recv(c.sock)
    p.advance(5_000_000)
    p.nothing()                             # no more retransmissions


def test_bad_checksum_dropped(p):
    c = p.passive_open()
    p.inject(c.peer_port, 80, c.peer_iss + 1, c.stack_iss + 1, "R", bad_csum=True)
    p.nothing()
    assert c.state() == "ESTABLISHED"
    assert p.stack.stats()["tcp_bad_checksum"] == 1


def test_challenge_acks_rate_limited(p):
    c = p.passive_open()
    for i in range(1100):
        c.send("R", seq=100 + i, advance=False)
    assert len(c.segs()) == 1000                # RFC 5961 7: at most 1000 a second
    p.advance(1_000_000)
    c.send("R", seq=100, advance=False)
    assert len(c.segs()) == 1
    assert c.state() == "ESTABLISHED"
