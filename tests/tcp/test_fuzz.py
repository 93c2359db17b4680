"""Arbitrary segments (hypothesis) never crash the stack or break its invariants:
random flags, sequence/ack numbers, windows, option bytes and payloads, thrown
at a listener and at an established connection."""

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _pkt import ETH_IP, eth, ipv4
from _script import PEER_IP, PEER_MAC, STACK_IP, M32, Peer, tcp_segment

segments = st.lists(
    st.tuples(
        st.sampled_from([80, 81]),                     # listener port / closed port
        st.integers(0, M32), st.integers(0, M32),      # seq (relative or absolute), ack
        st.integers(0, 63),                            # flags
        st.integers(0, 65535),                         # window
        st.binary(max_size=40).map(lambda b: b + b"\0" * (-len(b) % 4)),  # options
        st.binary(max_size=300),                       # payload
        st.booleans(),                                 # relative to the connection
        st.integers(0, 300_000),                       # time step
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments)
def test_random_segments(segs):
    p = Peer()
    try:
        c = p.passive_open(80, peer_port=40000)
        for port, seq, ack, flags, win, opts, data, rel, dt in segs:
            if rel:
                seq = (c.peer_iss + 1 + (seq % 200_000)) & M32
                ack = (c.stack_iss + (ack % 3000)) & M32
            sport = 40000 if rel else 40001 + (seq % 5)
            if len(opts) > 40:
                opts = opts[:40]
            raw = tcp_segment(PEER_IP, STACK_IP, sport, port, seq, ack, flags, win, data, opts)
            p.b.send(eth(p.stack_mac, PEER_MAC, ETH_IP, ipv4(PEER_IP, STACK_IP, 6, raw)))
            p.advance(dt)
            p.segments()
            try:
                p.stack.tcp_recv(c.sock)
                p.stack.tcp_send(c.sock, b"r" * (seq % 3000), p.now)
            except OSError:
                pass
        # Whatever happened, everything can be closed and nothing leaks.
        p.stack.tcp_abort(c.sock, p.now)
        p.stack.tcp_close(c.listener, p.now)
        p.advance(300_000_000)
        p.segments()
        st_ = p.stack.stats()
        assert st_["tcp_conns"] == 0, st_
        assert st_["tcp_buffer_bytes"] == 0
        assert st_["sockets"] == 0
    finally:
        p.close()


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_garbage_tcp_headers(raw):
    p = Peer()
    try:
        p.listen(80)
        hdr = raw[:20].ljust(20, b"\0")
        hdr = struct.pack("!HH", 40000, 80) + hdr[4:]
        p.b.send(eth(p.stack_mac, PEER_MAC, ETH_IP, ipv4(PEER_IP, STACK_IP, 6, hdr + raw[20:])))
        p.poll()
        p.segments()
    finally:
        p.close()
