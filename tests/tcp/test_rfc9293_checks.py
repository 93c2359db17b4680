"""RFC 9293 3.10.7 "segment arrives" checks not covered elsewhere, as scripts:
SYN-RECEIVED's unacceptable ACKs (RST, not a challenge ACK), old duplicate
ACKs that must not move the send window, segments without ACK, text after a
FIN, and SYN-SENT ignoring what is neither SYN nor an acceptable RST."""

import pytest

from _script import M32, Conn, Peer, RST


@pytest.fixture
def p():
    peer = Peer()
    yield peer
    peer.close()


def syn_received(p, port=80, peer_port=40000, iss=1):
    lsock = p.listen(port)
    c = Conn(p, port, peer_port, peer_iss=iss)
    c.inject_abs(iss, 0, "S")
    (sa,) = p.segments()
    c.stack_iss = sa.seq
    return lsock, c


@pytest.mark.parametrize("rack", [1000, 5, -1, -70_000], ids=["beyond-nxt", "beyond-nxt-small", "iss", "far-old"])
def test_syn_received_unacceptable_ack_gets_rst(p, rack):
    # 3.10.7.4 fifth, SYN-RECEIVED: "If the segment acknowledgment is not acceptable,
    # form a reset segment <SEQ=SEG.ACK><CTL=RST>" (acceptable: SND.UNA < SEG.ACK =< SND.NXT).
    lsock, c = syn_received(p)
    c.send("A", ack=rack, advance=False)
    (r,) = p.segments()
    assert r.flags == RST and r.seq == (c.stack_iss + 1 + rack) & M32
    assert p.stack.stats()["tcp_challenge_acks"] == 0
    # The embryo is still there: the right ACK completes the handshake.
    c.send("A", ack=0)
    p.nothing()
    assert p.stack.tcp_accept(lsock) is not None


def test_old_duplicate_ack_does_not_move_the_window(p):
    # 3.10.7.4 fifth: "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be
    # updated"; an ACK below SND.UNA is a duplicate and "can be ignored".
    c = p.passive_open()
    st = p.stack
    st.tcp_send(c.sock, b"a" * 100, p.now)
    p.poll()
    c.expect("A", seq=0, length=100)
    c.send("A", b"x", ack=100)                      # SND.UNA = 100, window 65535 (SND.WL1 = 0)
    # Later peer data (SEG.SEQ > SND.WL1) carrying an older ACK and a zero window.
    c.send("A", b"hi", ack=50, window=0)
    assert c.info()["snd_wnd"] == 65535
    st.tcp_send(c.sock, b"b" * 10, p.now)
    p.poll()
    s = [x for x in c.segs() if x.payload]
    assert s and s[0].rseq == 100 and s[0].payload == b"b" * 10   # not stalled on a zero window
    assert st.tcp_recv(c.sock) == b"xhi"            # the text itself is still taken


def test_segment_without_ack_is_dropped(p):
    # 3.10.7.4 fifth: "if the ACK bit is off, drop the segment and return".
    c = p.passive_open()
    c.send("", b"no ack", advance=False)
    p.advance(100_000)
    p.nothing()
    assert c.info()["bytes_readable"] == 0 and c.info()["rcv_nxt"] == (c.peer_iss + 1) & M32


def test_text_after_fin_is_ignored(p):
    # 3.10.7.4 seventh, CLOSE-WAIT: "This should not occur since a FIN has been
    # received from the remote side. Ignore the segment text."
    c = p.passive_open()
    c.send("FA", b"last")
    c.expect("A", ack=5)
    assert c.state() == "CLOSE-WAIT"
    c.send("A", b"more")
    assert p.stack.tcp_recv(c.sock) == b"last"
    assert p.stack.tcp_recv(c.sock) == b""
    assert c.info()["rcv_nxt"] == (c.peer_iss + 1 + 5) & M32


def test_syn_sent_ignores_fin_and_rst_without_ack(p):
    # 3.10.7.3: RST without an acceptable ACK is dropped; "If neither of the SYN or
    # RST bits is set, then drop the segment" (a FIN is not processed in SYN-SENT).
    sock = p.stack.tcp_connect(("10.0.0.2", 80), now_us=p.now)
    p.poll()
    (syn,) = p.segments()
    c = Conn(p, syn.sport, 80, peer_iss=9000)
    c.sock, c.stack_iss = sock, syn.seq
    c.inject_abs(9000, 0, "R")
    p.nothing()
    c.inject_abs(9000, syn.seq + 1, "FA")
    p.nothing()
    assert c.state() == "SYN-SENT"
    c.inject_abs(9000, syn.seq + 1, "SA")
    c.expect("A", seq=0, ack=0)
    assert c.state() == "ESTABLISHED"


def test_zero_receive_window_still_takes_an_exact_rst():
    # 3.10.7.4 first check: with RCV.WND = 0 "special allowance should be made to
    # accept valid ACKs, URGs, and RSTs" - an RST at RCV.NXT resets; one past it does not.
    q = Peer(tcp_rcvbuf=4096)
    try:
        c = q.passive_open()
        for _ in range(3):
            c.send("A", b"x" * 1460)
        q.advance(40_000)
        assert c.segs()[-1].window == 0
        c.send("R", seq=4097, advance=False)         # not RCV.NXT: not acceptable, no reply
        q.nothing()
        assert c.state() == "ESTABLISHED"
        c.send("R", seq=4096, advance=False)
        assert c.state() == "CLOSED"
        with pytest.raises(ConnectionResetError):
            q.stack.tcp_send(c.sock, b"z")
    finally:
        q.close()
