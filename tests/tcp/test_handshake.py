"""Opening connections (RFC 9293 3.5, 3.10.7.2-3): passive, active, simultaneous,
refused, SYN and SYN-ACK retransmission, SYN cookies, limits."""

import errno

import pytest

from aiorusty._rusty import lib
from _script import ACK, EV, RST, SYN, M32, Conn, Peer, ev_types, tcp_options


@pytest.fixture
def p():
    peer = Peer()
    yield peer
    peer.close()


def test_passive_open(p):
    lsock = p.listen(80)
    c = Conn(p, 80, 40000, peer_iss=1000)
    c.inject_abs(1000, 0, "S", options=tcp_options(mss=1200))
    (synack,) = p.segments()
    assert synack.flags == SYN | ACK and synack.ack == 1001
    assert synack.opts.get("mss") == 1460       # ours: MTU 1500 - 40
    assert "wscale" not in synack.opts and "ts" not in synack.opts  # not offered by the peer
    assert p.stack.tcp_accept(lsock) is None    # still SYN-RECEIVED
    c.stack_iss = synack.seq
    c.send("A")
    p.nothing()
    assert [e[1] for e in p.take_events(lsock)] == [EV["accept"]]
    c.sock = p.stack.tcp_accept(lsock)
    info = c.info()
    assert info["state"] == "ESTABLISHED" and info["mss"] == 1200
    assert info["remote"] == ("10.0.0.2", 40000)
    assert p.stack.stats()["tcp_passive_opens"] == 1


def test_active_open(p):
    sock = p.stack.tcp_connect(("10.0.0.2", 8080), now_us=p.now)
    p.poll()
    (syn,) = p.segments()
    assert syn.flags == SYN and syn.dport == 8080
    assert 49152 <= syn.sport <= 65535
    assert syn.opts["mss"] == 1460 and "wscale" in syn.opts and "ts" in syn.opts
    assert p.stack.tcp_info(sock)["state"] == "SYN-SENT"
    c = Conn(p, syn.sport, 8080, peer_iss=7000)
    c.stack_iss = syn.seq
    c.sock = sock
    c.inject_abs(7000, syn.seq + 1, "SA", options=tcp_options(mss=1000))
    c.expect("A", seq=0, ack=0)
    assert ev_types(p.take_events(sock)) == [EV["connected"], EV["writable"]]
    assert c.state() == "ESTABLISHED" and c.info()["mss"] == 1000


def test_syn_retransmit_backoff_then_etimedout(p):
    sock = p.stack.tcp_connect(("10.0.0.2", 81), now_us=p.now)
    p.poll()
    (syn,) = p.segments()
    t0 = p.now
    times = []
    for _ in range(6):                  # Linux tcp_syn_retries = 6
        p.advance(p.stack.next_deadline(p.now) - p.now)
        (again,) = p.segments()
        assert again.flags == SYN and again.seq == syn.seq
        times.append(p.now - t0)
    assert times == [1_000_000, 3_000_000, 7_000_000, 15_000_000, 31_000_000, 63_000_000]
    p.advance(p.stack.next_deadline(p.now) - p.now)
    p.nothing()
    evs = p.take_events(sock)
    assert (sock, EV["closed"], 0, -errno.ETIMEDOUT) == evs[-1][:4]
    with pytest.raises(TimeoutError):
        p.stack.tcp_recv(sock)


def test_synack_retransmit(p):
    p.listen(80)
    c = Conn(p, 80, 40001, peer_iss=1)
    c.inject_abs(1, 0, "S")
    (sa,) = p.segments()
    p.advance(999_999)
    p.nothing()
    p.advance(1)
    (sa2,) = p.segments()
    assert sa2.flags == SYN | ACK and sa2.seq == sa.seq and sa2.ack == 2
    # A retransmitted SYN gets the SYN-ACK again at once.
    c.inject_abs(1, 0, "S")
    (sa3,) = p.segments()
    assert sa3.flags == SYN | ACK and sa3.seq == sa.seq


def test_synack_gives_up(p):
    lsock = p.listen(80)
    c = Conn(p, 80, 40002, peer_iss=1)
    c.inject_abs(1, 0, "S")
    p.segments()
    for _ in range(5):
        p.advance(p.stack.next_deadline(p.now) - p.now)
        assert [s.flags for s in p.segments()] == [SYN | ACK]
    p.advance(p.stack.next_deadline(p.now) - p.now)
    p.nothing()
    assert p.stack.stats()["tcp_conns"] == 0
    assert p.stack.tcp_accept(lsock) is None


def test_refused_no_listener(p):
    Conn(p, 99, 40003, peer_iss=500).inject_abs(500, 0, "S")
    (rst,) = p.segments()
    # RFC 9293 3.10.7.1, no ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    assert rst.flags == RST | ACK and rst.seq == 0 and rst.ack == 501


def test_ack_to_closed_port_gets_rst_seq_ack(p):
    Conn(p, 99, 40003, peer_iss=500).inject_abs(600, 12345, "A", payload=b"x")
    (rst,) = p.segments()
    assert rst.flags == RST and rst.seq == 12345  # <SEQ=SEG.ACK><CTL=RST>


def test_active_open_refused(p):
    sock = p.stack.tcp_connect(("10.0.0.2", 82), now_us=p.now)
    p.poll()
    (syn,) = p.segments()
    c = Conn(p, syn.sport, 82, peer_iss=0)
    c.inject_abs(0, syn.seq + 1, "RA")
    p.nothing()
    evs = p.take_events(sock)
    assert evs[-1][1] == EV["closed"] and evs[-1][3] == -errno.ECONNREFUSED
    with pytest.raises(ConnectionRefusedError):
        p.stack.tcp_recv(sock)
    p.stack.tcp_close(sock)
    assert p.stack.stats()["tcp_conns"] == 0


def test_syn_sent_bad_ack_gets_rst(p):
    sock = p.stack.tcp_connect(("10.0.0.2", 83), now_us=p.now)
    p.poll()
    (syn,) = p.segments()
    c = Conn(p, syn.sport, 83, peer_iss=0)
    c.inject_abs(0, syn.seq + 100, "SA")
    (rst,) = p.segments()
    assert rst.flags == RST and rst.seq == syn.seq + 100
    # An RST without an acceptable ACK is ignored in SYN-SENT.
    c.inject_abs(0, syn.seq + 100, "RA")
    p.nothing()
    assert p.stack.tcp_info(sock)["state"] == "SYN-SENT"


def test_simultaneous_open(p):
    sock = p.stack.tcp_connect(("10.0.0.2", 84), src=None, now_us=p.now)
    p.poll()
    (syn,) = p.segments()
    c = Conn(p, syn.sport, 84, peer_iss=9000)
    c.stack_iss = syn.seq
    c.sock = sock
    c.inject_abs(9000, 0, "S")           # their SYN crosses ours
    sa = c.expect("SA", seq=-1, ack=0)   # <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>
    assert c.state() == "SYN-RECEIVED"
    c.inject_abs(9000, syn.seq + 1, "SA")  # their SYN-ACK: now ESTABLISHED
    assert c.state() == "ESTABLISHED"
    assert EV["connected"] in ev_types(p.take_events(sock))
    assert sa.opts.get("mss")


def test_syn_cookies_when_backlog_full(p):
    lsock = p.listen(80, backlog=1)
    Conn(p, 80, 41000, peer_iss=10).inject_abs(10, 0, "S")   # fills the SYN queue
    p.segments()
    c = Conn(p, 80, 41001, peer_iss=20)
    c.inject_abs(20, 0, "S", options=tcp_options(mss=1400, wscale=7, ts=(5, 0)))
    (sa,) = p.segments()
    assert sa.flags == SYN | ACK and sa.opts == {"mss": 1360}   # no state: no WS/TS
    assert p.stack.stats()["tcp_syn_cookies_sent"] == 1
    # A forged ACK is answered with RST; the right one opens the connection.
    c.inject_abs(21, sa.seq + 2, "A")
    (rst,) = p.segments()
    assert rst.flags == RST
    c.stack_iss = sa.seq
    c.send("A", b"GET /")
    assert p.stack.stats()["tcp_syn_cookies_ok"] == 1
    # the first embryo (41000) waits in SYN-RECEIVED; the cookie one is accepted
    s = p.stack.tcp_accept(lsock)
    assert p.stack.tcp_info(s)["remote"] == ("10.0.0.2", 41001)
    assert p.stack.tcp_info(s)["mss"] == 1360
    p.advance(40_000)
    assert p.stack.tcp_recv(s) == b"GET /"


def test_accept_queue_full_answers_with_a_cookie_and_overflow_is_retried(p):
    """A full accept queue costs no state and sends no RST (as Linux with
    syncookies): the SYN gets a cookie; the ACK completing it while the queue is
    still full is dropped (tcp_listen_overflows), and the peer's next segment
    completes the handshake once the app has accepted."""
    lsock = p.listen(80, backlog=1)
    first = p.passive_open(80, peer_port=42000, listener=lsock, accept=False)
    c = Conn(p, 80, 42001, peer_iss=1)
    c.inject_abs(1, 0, "S")
    (sa,) = p.segments()
    assert sa.flags == SYN | ACK and p.stack.stats()["tcp_syn_cookies_sent"] == 1
    c.stack_iss = sa.seq
    c.send("A", b"hello")
    p.nothing()                                                 # queue full: dropped, no RST
    st = p.stack.stats()
    assert st["tcp_listen_overflows"] == 1 and st["tcp_rst_tx"] == 0
    assert p.stack.tcp_accept(lsock) is not None                # the app makes room
    c.send("A", b"hello", seq=0)                                # the peer's retransmission
    s2 = p.stack.tcp_accept(lsock)
    assert p.stack.tcp_info(s2)["remote"] == ("10.0.0.2", 42001)
    p.advance(40_000)
    assert p.stack.tcp_recv(s2) == b"hello"
    assert first is not None


def test_connection_limit_emfile():
    p = Peer(max_tcp_conns=2)
    try:
        p.stack.tcp_connect(("10.0.0.2", 1), now_us=0)
        p.stack.tcp_connect(("10.0.0.2", 1), now_us=0)
        with pytest.raises(OSError) as e:
            p.stack.tcp_connect(("10.0.0.2", 1), now_us=0)
        assert e.value.errno == errno.EMFILE
    finally:
        p.close()


def test_tcp_mem_refuses_new_connections_with_enobufs():
    """At cfg.tcp_mem a connect fails with ENOBUFS, counted and reported once
    (RUSTY_EV_LIMIT); the connection that holds the memory keeps working."""
    p = Peer(tcp_mem=100_000, tcp_rcvbuf=32768)
    try:
        c = p.passive_open()
        assert p.stack.stats()["tcp_mem_bytes"] == 32768            # its open window, no ring yet
        assert p.stack.tcp_send(c.sock, b"s" * 65536, p.now) == 65536   # send ring: 64 KiB more
        for _ in range(2):
            with pytest.raises(OSError) as e:
                p.stack.tcp_connect(("10.0.0.2", 1), now_us=p.now)
            assert e.value.errno == errno.ENOBUFS and "tcp_mem" in str(e.value)
        p.poll()
        limits = [e for e in p.events if e[1] == lib.RUSTY_EV_LIMIT]
        assert [(e[0], e[3]) for e in limits] == [(0, lib.RUSTY_LIMIT_TCP_MEM)]   # once
        assert p.stack.stats()["tcp_mem_refused"] == 2
        got = b""
        while len(got) < 65536:                                    # the old connection still delivers
            segs = c.segs()
            assert segs, "the connection stalled"
            got += b"".join(s.payload for s in segs)
            c.send("A", ack=len(got))
            p.poll()
        assert got == b"s" * 65536
        assert p.stack.stats()["tcp_buffer_bytes"] == 0              # acknowledged: the ring went back
    finally:
        p.close()


def test_isn_differs_per_tuple_and_time(p):
    a = p.stack.tcp_connect(("10.0.0.2", 1), now_us=0)
    b = p.stack.tcp_connect(("10.0.0.2", 2), now_us=0)
    ia, ib = p.stack.tcp_info(a)["snd_una"], p.stack.tcp_info(b)["snd_una"]
    assert ia != ib
    assert (ia - ib) & M32 not in (0, 1)


def test_icmp_port_unreachable_refuses_syn_sent(p):
    from _pkt import ETH_IP, eth, icmp, ipv4
    from _script import PEER_IP, PEER_MAC, STACK_IP, Seg

    sock = p.stack.tcp_connect(("10.0.0.2", 85), now_us=p.now)
    p.poll()
    (f,) = p.frames()
    quoted = f.ip_header + bytes(f.l4[:8])
    msg = icmp(3, 3, 0, quoted)
    p.inject_raw(eth(p.stack_mac, PEER_MAC, ETH_IP, ipv4(PEER_IP, STACK_IP, 1, msg)))
    evs = p.take_events(sock)
    assert evs and (evs[-1][1], evs[-1][3]) == (EV["closed"], -errno.ECONNREFUSED)
    assert Seg(f).flags == SYN


def test_listener_close_resets_unaccepted(p):
    lsock = p.listen(80)
    c = p.passive_open(80, listener=lsock, accept=False)
    emb = Conn(p, 80, 40009, peer_iss=77)
    emb.inject_abs(77, 0, "S")
    p.segments()
    p.stack.tcp_close(lsock, p.now)
    p.poll()
    rsts = p.segments()
    assert sorted(s.dport for s in rsts if s.flags & RST) == [40000, 40009]
    assert p.stack.stats()["tcp_conns"] == 0 and p.stack.stats()["sockets"] == 0
    c.send("A", b"late")
    (r,) = p.segments()
    assert r.flags & RST


def test_listen_errors(p):
    p.listen(80)
    with pytest.raises(OSError) as e:
        p.stack.tcp_listen("10.0.0.1", 80)
    assert e.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as e:
        p.stack.tcp_listen("10.9.9.9", 81)
    assert e.value.errno == errno.EADDRNOTAVAIL


def test_data_queued_in_syn_sent_goes_after_handshake(p):
    sock = p.stack.tcp_connect(("10.0.0.2", 86), now_us=p.now)
    assert p.stack.tcp_send(sock, b"early", p.now) == 5
    p.poll()
    (syn,) = p.segments()
    assert syn.payload == b""
    c = Conn(p, syn.sport, 86, peer_iss=1)
    c.stack_iss = syn.seq
    c.sock = sock
    c.inject_abs(1, syn.seq + 1, "SA", options=tcp_options(mss=1460))
    c.expect("A", seq=0, ack=0, data=b"early")


def test_isn_rfc6528_clock(p):
    """Same 4-tuple: the ISN advances with the 4 us clock M (the keyed hash F is fixed)."""
    a = p.stack.tcp_connect(("10.0.0.2", 7), src=("10.0.0.1", 5000), now_us=0)
    isn_a = p.stack.tcp_info(a)["snd_una"]
    p.stack.tcp_abort(a, 0)
    b = p.stack.tcp_connect(("10.0.0.2", 7), src=("10.0.0.1", 5000), now_us=4_000_000)
    isn_b = p.stack.tcp_info(b)["snd_una"]
    assert (isn_b - isn_a) & M32 == 1_000_000
    c = p.stack.tcp_connect(("10.0.0.2", 8), src=("10.0.0.1", 5000), now_us=4_000_000)
    assert (p.stack.tcp_info(c)["snd_una"] - isn_b) & M32 not in range(0, 2_000_000)


def test_ephemeral_range_and_exhaustion():
    p = Peer(ephemeral_lo=40000, ephemeral_hi=40003)
    try:
        ports = set()
        for _ in range(4):
            s = p.stack.tcp_connect(("10.0.0.2", 9), now_us=0)
            ports.add(p.stack.tcp_info(s)["local_port"])
        assert ports == {40000, 40001, 40002, 40003}
        with pytest.raises(OSError) as e:
            p.stack.tcp_connect(("10.0.0.2", 9), now_us=0)
        assert e.value.errno == errno.EADDRNOTAVAIL
        # another destination port is another 4-tuple: the ports are free for it
        p.stack.tcp_connect(("10.0.0.2", 10), now_us=0)
    finally:
        p.close()


def test_windows_are_charged_and_clamped_under_memory_pressure():
    """A connection holds no ring until bytes arrive, but the window it offers is
    charged to tcp_mem (RFC 9293 3.8.6.2.2: an offered window is not taken back).
    From half of tcp_mem new windows start at 4 KiB; at the limit a SYN is dropped."""
    p = Peer(tcp_mem=80_000, tcp_rcvbuf=32768)
    try:
        lsock = p.listen(80)
        windows = []
        for port in range(43000, 43006):
            Conn(p, 80, port, peer_iss=1).inject_abs(1, 0, "S")
            segs = p.segments()
            windows.append(segs[0].window if segs else None)
        assert windows == [32768, 32768, 4096, 4096, 4096, None]   # the sixth: no memory, dropped
        st = p.stack.stats()
        assert st["tcp_buffer_bytes"] == 0 and st["tcp_mem_bytes"] == 2 * 32768 + 3 * 4096
        assert st["tcp_mem_refused"] == 1 and st["tcp_mem_pressure"] >= 2 and st["tcp_rst_tx"] == 0
        assert p.stack.tcp_accept(lsock) is None
    finally:
        p.close()


def test_receive_ring_comes_with_data_and_goes_when_read(p):
    c = p.passive_open()
    assert p.stack.stats()["tcp_buffer_bytes"] == 0
    c.send("A", b"x" * 100)
    assert p.stack.stats()["tcp_buffer_bytes"] == 4096             # the smallest ring
    for _ in range(3):
        c.send("A", b"y" * 1400)                                    # past 4 KiB: grows (doubling)
    assert p.stack.stats()["tcp_buffer_bytes"] == 8192
    assert p.stack.tcp_recv(c.sock, 1 << 20) == b"x" * 100 + b"y" * 4200
    assert p.stack.stats()["tcp_buffer_bytes"] == 0
