"""Keep-alive (RFC 1122 4.2.3.6): probes after the idle time, a live peer's ACK
resets them, a dead peer is detected after KEEPCNT probes (ETIMEDOUT)."""

import errno
import socket

import pytest

from _script import EV, Peer


@pytest.fixture
def p():
    peer = Peer()
    yield peer
    peer.close()


def setup_keepalive(p, c):
    st = p.stack
    st.tcp_setsockopt(c.sock, socket.TCP_KEEPIDLE, 10)
    st.tcp_setsockopt(c.sock, socket.TCP_KEEPINTVL, 1)
    st.tcp_setsockopt(c.sock, socket.TCP_KEEPCNT, 3)
    st.tcp_setsockopt(c.sock, socket.SO_KEEPALIVE, 1)


def test_keepalive_probe_and_live_peer(p):
    c = p.passive_open()
    setup_keepalive(p, c)
    p.advance(9_999_999)
    p.nothing()
    p.advance(1)
    probe = c.expect("A", seq=-1, length=0)   # <SEQ=SND.UNA-1>
    assert probe.rack == 0
    c.send("A")                                # alive
    p.advance(9_000_000)
    p.nothing()                                # idle timer restarted from the ACK
    p.advance(1_000_000)
    c.expect("A", seq=-1)


def test_keepalive_dead_peer_etimedout(p):
    c = p.passive_open()
    setup_keepalive(p, c)
    p.advance(10_000_000)
    c.expect("A", seq=-1)
    p.advance(1_000_000)
    c.expect("A", seq=-1)
    p.advance(1_000_000)
    c.expect("A", seq=-1)
    p.advance(1_000_000)
    p.nothing()
    evs = p.take_events(c.sock)
    assert (evs[-1][1], evs[-1][3]) == (EV["closed"], -errno.ETIMEDOUT)
    assert c.state() == "CLOSED"


def test_keepalive_off_by_default(p):
    c = p.passive_open()
    p.advance(3 * 3600 * 1_000_000)
    p.nothing()
    assert c.state() == "ESTABLISHED"


def test_keepalive_inherited_from_listener(p):
    lsock = p.listen(80)
    p.stack.tcp_setsockopt(lsock, "keepidle", 5)
    p.stack.tcp_setsockopt(lsock, "keepalive", 1)
    c = p.passive_open(80, listener=lsock)
    p.advance(5_000_000)
    c.expect("A", seq=-1)
