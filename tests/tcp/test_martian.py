"""Martian sources (RFC 1122 3.2.1.3, RFC 1812 5.3.7; Linux's ip_route_input_slow and
fib_validate_source): a datagram arriving on a link from an address no host there can
have is dropped and counted in ip_rx_martian, among them the LAND attack, a SYN from the
stack's own address and port to itself. The stack's own traffic to itself (the local
queue, Linux's lo) is not a martian."""

import pytest

from aiorusty.nic import open_pair
from aiorusty.tcp import Stack

from _pkt import ETH_IP, eth, ipv4, udp
from _script import PEER_MAC, STACK_IP, SYN, Peer, tcp_options, tcp_segment


@pytest.fixture
def p():
    peer = Peer()
    yield peer
    peer.close()


def syn_from(p, src, sport=40000, dport=80, dst=STACK_IP):
    seg = tcp_segment(src, dst, sport, dport, 1000, 0, SYN, 65535, options=tcp_options(mss=1460))
    p.inject_raw(eth(p.stack_mac, PEER_MAC, ETH_IP, ipv4(src, dst, 6, seg)))


def test_land_syn_is_dropped(p):
    """One SYN from 10.0.0.1:80 to 10.0.0.1:80 made the stack answer itself, forever."""
    listener = p.listen(80)
    syn_from(p, STACK_IP, sport=80)
    for _ in range(3):
        p.poll()
    p.nothing()
    assert p.stack.next_deadline(p.now) != p.now      # no local traffic left to deliver
    assert p.stack.tcp_accept(listener) is None
    st = p.stack.stats()
    assert st["tcp_rx"] == 0 and st["tcp_tx"] == 0
    assert st["ip_rx_martian"] == 1


@pytest.mark.parametrize("src", [
    "10.0.0.1",             # our own address
    "0.0.0.0", "0.1.2.3",   # "this network" (0/8)
    "127.0.0.1", "127.9.9.9",
    "224.0.0.1", "239.255.255.250",
    "240.0.0.1", "255.255.255.255",
    "10.0.0.255",           # the receiving interface's directed broadcast
])
def test_martian_source_gets_no_answer(p, src):
    p.listen(80)
    syn_from(p, src)
    p.nothing()
    st = p.stack.stats()
    assert st["tcp_rx"] == 0
    assert st["ip_rx_martian"] == 1


def test_secondary_address_as_source_is_martian():
    a, b = open_pair()
    stack = Stack(seed=7)
    try:
        stack.add_interface(a, 0, ip="10.0.0.1+10.0.0.7/24")
        smac = bytes.fromhex(a.info()["mac"].replace(":", ""))
        stack.tcp_listen("10.0.0.1", 80, 16)
        seg = tcp_segment("10.0.0.7", STACK_IP, 40000, 80, 1000, 0, SYN, 65535)
        b.send(eth(smac, PEER_MAC, ETH_IP, ipv4("10.0.0.7", STACK_IP, 6, seg)))
        stack.poll(1)
        assert stack.stats()["ip_rx_martian"] == 1
    finally:
        stack.close()
        a.close()
        b.close()


def test_dhcp_style_broadcast_from_zero_is_accepted(p):
    """0.0.0.0 to the limited broadcast is a host learning its address (RFC 2131 4.1);
    Linux accepts it, and so does the stack."""
    sock = p.stack.udp_bind(None, 67)
    dgram = udp("0.0.0.0", "255.255.255.255", 68, 67, b"discover")
    p.inject_raw(eth(b"\xff" * 6, PEER_MAC, ETH_IP, ipv4("0.0.0.0", "255.255.255.255", 17, dgram)))
    assert p.stack.udp_recvfrom(sock) == (b"discover", ("0.0.0.0", 68))
    assert p.stack.stats()["ip_rx_martian"] == 0


def test_connection_to_own_address_still_works(p):
    """Local delivery carries our own source address and is not a martian."""
    listener = p.listen(80)
    client = p.stack.tcp_connect((STACK_IP, 80), now_us=p.now)
    for _ in range(4):
        p.poll()
    server = p.stack.tcp_accept(listener)
    assert server is not None
    assert p.stack.tcp_info(server)["remote"] == p.stack.tcp_info(client)["local"]
    assert p.stack.stats()["ip_rx_martian"] == 0
    p.nothing()                                        # nothing went to the wire
