"""Listeners sharing a port with SO_REUSEPORT (rusty_tcp_listen's RUSTY_TCP_LISTEN_REUSEPORT).

Linux's rules: overlapping listeners (same address, or either one the wildcard)
conflict unless both set the flag (net/ipv4/inet_connection_sock.c,
inet_bind_conflict); a SYN goes to the listeners on its exact address before
the wildcard ones, and within that group to one member picked by the flow's
hash (net/core/sock_reuseport.c, reuseport_select_sock), so every segment of
a flow meets the same member, SYN cookies included.
"""

import errno

import pytest

from aiorusty._rusty import ffi, lib
from _script import RST, SYN, ACK, STACK_IP, Conn, Peer


@pytest.fixture
def p():
    peer = Peer()
    yield peer
    peer.close()


def listen(p, ip=STACK_IP, port=80, backlog=128, reuse_port=True):
    return p.stack.tcp_listen(ip, port, backlog, reuse_port=reuse_port)


def refused(p, ip, port=80, reuse_port=True):
    with pytest.raises(OSError) as e:
        listen(p, ip, port, reuse_port=reuse_port)
    return e.value.errno == errno.EADDRINUSE


def handshake(p, port, listener, peer_iss=1000):
    """SYN, SYN-ACK, ACK from the peer's source port `port`; the connection is left in an accept queue."""
    return p.passive_open(80, peer_port=port, iss=peer_iss, listener=listener, accept=False)


def accept_all(p, lsock):
    """Peer source ports of every connection waiting on lsock (accepted, then aborted)."""
    ports = []
    while (s := p.stack.tcp_accept(lsock)) is not None:
        ports.append(p.stack.tcp_info(s)["remote"][1])
        p.stack.tcp_abort(s, p.now)
    p.poll()
    assert all(seg.flags & RST for seg in p.segments())     # the aborts' resets, nothing else
    return ports


def test_both_must_set_reuse_port(p):
    listen(p, reuse_port=False)
    assert refused(p, STACK_IP) and refused(p, None)
    p2 = Peer()
    try:
        listen(p2)
        assert refused(p2, STACK_IP, reuse_port=False) and refused(p2, None, reuse_port=False)
    finally:
        p2.close()


def test_reuse_port_group_and_wildcard_coexist(p):
    a = listen(p)
    b = listen(p)
    any_a = listen(p, None)             # Linux: a wildcard and a specific address, both flagged
    any_b = listen(p, None)
    assert len({a, b, any_a, any_b}) == 4
    assert refused(p, None, reuse_port=False) and refused(p, STACK_IP, reuse_port=False)
    listen(p, port=81, reuse_port=False)      # another port is another matter


def test_wildcard_without_the_flag_blocks_a_specific_one_with_it(p):
    listen(p, None, reuse_port=False)
    assert refused(p, STACK_IP)


def test_unknown_flags_are_refused(p):
    out = ffi.new("uint32_t *")
    assert lib.rusty_tcp_listen(p.stack._ptr, 0, 80, 16, 2, out) == -errno.EINVAL


def test_port_zero_never_joins_a_group():
    """An automatic port is one no listener uses, even with the flag (Linux's autobind)."""
    p = Peer(ephemeral_lo=50000, ephemeral_hi=50001)
    try:
        first = listen(p, port=0)
        taken = p.stack.tcp_info(first)["local"][1]
        second = listen(p, port=0)
        assert {taken, p.stack.tcp_info(second)["local"][1]} == {50000, 50001}
        assert refused(p, STACK_IP, port=0)   # both ports listened on: none left
    finally:
        p.close()


def test_connections_spread_over_the_group(p):
    group = [listen(p), listen(p), listen(p)]
    ports = range(41000, 41096)
    for port in ports:
        handshake(p, port, group[0])
    got = [accept_all(p, l) for l in group]
    assert sorted(sum(got, [])) == list(ports)
    assert all(got), f"a listener got no connection: {[len(g) for g in got]}"


def test_specific_address_group_wins_over_the_wildcard_one(p):
    wild = [listen(p, None), listen(p, None)]
    mine = [listen(p), listen(p)]
    for port in range(41000, 41016):
        handshake(p, port, mine[0])
    assert not any(accept_all(p, l) for l in wild)
    assert sorted(accept_all(p, mine[0]) + accept_all(p, mine[1])) == list(range(41000, 41016))
    for l in mine:
        p.stack.tcp_close(l, p.now)
    for port in range(41100, 41116):
        handshake(p, port, wild[0])
    assert sorted(accept_all(p, wild[0]) + accept_all(p, wild[1])) == list(range(41100, 41116))


def mapping(p, group, ports):
    """Which member each peer port's flow reaches: learnt by a handshake, then the connection is aborted."""
    out = {}
    for port in ports:
        handshake(p, port, group[0])
        for i, l in enumerate(group):
            if accept_all(p, l):
                out[port] = i
    return out


def test_retransmitted_syn_and_cookie_ack_reach_the_same_listener(p):
    """Member 0 is in SYN-cookie mode (its SYN queue full), member 1 is not. A flow
    hashed to member 0 gets a cookie for its SYN and for the retransmitted SYN,
    and its ACK opens the connection on member 0; a flow hashed to member 1 gets
    an embryo (no cookie). So the SYN and the ACK met the member the hash picks."""
    group = [listen(p, backlog=1), listen(p, backlog=1)]
    where = mapping(p, group, range(41000, 41032))
    on = [[port for port, i in where.items() if i == k] for k in (0, 1)]
    assert len(on[0]) >= 2 and on[1], where
    Conn(p, 80, on[0][0], peer_iss=5).inject_abs(5, 0, "S")      # fills member 0's SYN queue
    p.segments()
    stats = p.stack.stats()
    c = Conn(p, 80, on[0][1], peer_iss=70)
    c.inject_abs(70, 0, "S")
    c.inject_abs(70, 0, "S")                                    # the peer's retransmission
    sas = p.segments()
    assert [s.flags for s in sas] == [SYN | ACK] * 2
    after = p.stack.stats()
    assert after["tcp_syn_cookies_sent"] == stats["tcp_syn_cookies_sent"] + 2
    assert after["tcp_conns"] == stats["tcp_conns"]             # no state kept for either SYN
    c.stack_iss = sas[-1].seq
    c.send("A", b"hi")
    assert p.stack.stats()["tcp_syn_cookies_ok"] == stats["tcp_syn_cookies_ok"] + 1
    assert accept_all(p, group[1]) == []
    assert accept_all(p, group[0]) == [on[0][1]]
    # A flow hashed to member 1 is not cookied: it keeps an embryo there.
    Conn(p, 80, on[1][0], peer_iss=9).inject_abs(9, 0, "S")
    (sa,) = p.segments()
    assert sa.flags == SYN | ACK
    assert p.stack.stats()["tcp_syn_cookies_sent"] == after["tcp_syn_cookies_sent"]


def test_closing_a_member_resets_its_own_and_moves_new_flows(p):
    group = [listen(p), listen(p)]
    where = mapping(p, group, range(41000, 41032))
    on = [[port for port, i in where.items() if i == k] for k in (0, 1)]
    assert len(on[0]) >= 2 and on[1], where
    queued = [handshake(p, on[k][0], group[k]) for k in (0, 1)]       # one waiting in each accept queue
    p.stack.tcp_close(group[0], p.now)
    p.poll()
    rsts = p.segments()
    assert [(s.dport, s.flags & RST) for s in rsts] == [(on[0][0], RST)]
    # Flows that went to the closed member now reach the one left.
    for port in on[0][1:]:
        handshake(p, port, group[1])
    assert sorted(accept_all(p, group[1])) == sorted([on[1][0]] + on[0][1:])
    assert queued[1] is not None
