"""Secondary addresses (iface.c, rusty_stack_add_address): an interface with
several addresses answers ARP and ICMP for each (hand-built frames over a
pair), and two stacks hold TCP connections from and to each address, over a
pair and over shm; the per-interface bound and the subnet rule hold."""

import errno
import ipaddress

import pytest

from aiorusty._rusty import lib
from aiorusty.nic import open_pair
from aiorusty.tcp import Stack

from _netns import unique
from _pkt import BROADCAST, ETH_ARP, ETH_IP, arp, drain, echo_request, eth, ipv4, mac
from _stack_peer import skip_if_enosys

ADDRS = ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
PEER = "10.0.0.1"
PEER_MAC = mac("02:00:00:00:00:01")
T0 = 1_000_000


@pytest.fixture
def link():
    a, b = open_pair()
    s = Stack(seed=7)
    s.add_interface(a, ip="10.0.0.2-10.0.0.4/24", now_us=T0)
    try:
        yield s, b, mac(a.info()["mac"])
    finally:
        s.close()
        a.close()
        b.close()


def test_interface_lists_its_addresses(link):
    s, _, _ = link
    iface = s.interfaces[0]
    assert str(iface.ip) == "10.0.0.2/24"
    assert [str(a) for a in iface.ips()] == ADDRS
    assert "ip=10.0.0.2-10.0.0.4/24" in str(iface)
    assert [s.route(a) for a in ADDRS + ["10.0.0.5"]] == [1, 1, 1, 2]


def test_each_address_announced(link):
    _, b, smac = link
    frames = drain(b)
    assert [(f.arp["op"], f.arp["spa"], f.arp["tpa"]) for f in frames] == [(1, a, a) for a in ADDRS]
    assert all(f.dst == BROADCAST and f.arp["sha"] == smac for f in frames)


def test_arp_answered_for_each_address(link):
    s, b, smac = link
    drain(b)
    for addr in ADDRS + ["10.0.0.9"]:
        b.send(eth(BROADCAST, PEER_MAC, ETH_ARP, arp(1, PEER_MAC, PEER, b"\0" * 6, addr)))
        s.poll(T0)
        frames = drain(b)
        if addr == "10.0.0.9":
            assert frames == []         # not ours
            continue
        assert len(frames) == 1, addr
        r = frames[0].arp
        assert (r["op"], r["sha"], r["spa"], r["tha"], r["tpa"]) == (2, smac, addr, PEER_MAC, PEER)
    assert s.stats()["arp_entries"] == 1


def test_ping_to_each_address_answered_from_it(link):
    s, b, smac = link
    b.send(eth(BROADCAST, PEER_MAC, ETH_ARP, arp(1, PEER_MAC, PEER, b"\0" * 6, ADDRS[0])))   # learn the peer
    s.poll(T0)
    drain(b)
    for seq, addr in enumerate(ADDRS):
        b.send(eth(smac, PEER_MAC, ETH_IP, ipv4(PEER, addr, 1, echo_request(5, seq))))
        s.poll(T0 + seq)
        replies = [f for f in drain(b) if f.icmp is not None]
        assert len(replies) == 1, addr
        assert replies[0].ip["src"] == addr and replies[0].ip["dst"] == PEER
        assert replies[0].icmp["type"] == 0 and replies[0].icmp["rest"] == (5 << 16) | seq


def test_datagram_to_another_address_not_for_us(link):
    s, b, smac = link
    drain(b)
    b.send(eth(smac, PEER_MAC, ETH_IP, ipv4(PEER, "10.0.0.5", 1, echo_request(5, 1))))
    s.poll(T0)
    assert drain(b) == []
    assert s.stats()["ip_not_for_us"] == 1


def test_add_address_rules():
    a, b = open_pair()
    s = Stack(seed=1)
    try:
        s.add_interface(a, ip="10.2.0.1/16")
        with pytest.raises(OSError) as e:
            s.add_address("10.3.0.1")
        assert e.value.errno == errno.EINVAL and "10.2.0.0/16" in str(e.value)
        for bad in ("10.2.0.0", "10.2.255.255"):     # network and broadcast addresses
            with pytest.raises(OSError) as e:
                s.add_address(bad)
            assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            s.add_address("10.2.0.1")
        assert e.value.errno == errno.EADDRINUSE
        with pytest.raises(ValueError, match="no interface 1"):
            s.add_address("10.2.0.2", interface=1)
        assert lib.rusty_stack_add_address(s._ptr, 1, 0x0A020002, 0) == -errno.EINVAL
        assert lib.rusty_stack_add_address(s._ptr, -1, 0x0A020002, 0) == -errno.EINVAL
        # Out of order, still found: the C array is kept sorted.
        extra = [ipaddress.IPv4Address("10.2.1.0") + i for i in range(lib.RUSTY_IFACE_MAX_ADDRS - 1)][::-1]
        for addr in extra:
            s.add_address(addr)
        assert len(s.interfaces[0].ips()) == lib.RUSTY_IFACE_MAX_ADDRS
        assert all(s.route(str(x)) == 1 for x in extra)
        assert s.route(str(extra[0] + 1)) == 2
        with pytest.raises(OSError) as e:
            s.add_address("10.2.9.9")
        assert e.value.errno == errno.ENOSPC and "at most 256" in str(e.value)
    finally:
        s.close()
        a.close()
        b.close()


def test_second_interface_may_not_take_a_secondary_address():
    a, b = open_pair()
    c, d = open_pair()
    s = Stack(seed=1)
    try:
        s.add_interface(a, ip="10.4.0.1-10.4.0.3/24")
        with pytest.raises(OSError) as e:
            s.add_interface(c, ip="10.4.0.3/24")
        assert e.value.errno == errno.EADDRINUSE
    finally:
        s.close()
        for dev in (a, b, c, d):
            dev.close()


def _pump(stacks, now, until, rounds=200):
    for _ in range(rounds):
        now += 200
        for st in stacks:
            st.poll(now)
        if until():
            return now
    raise AssertionError("condition not reached")


def _connections_from_each_address(client, server, client_ips, server_ip):
    """Connect from every client address to the server, exchange a line each way, then
    have the server connect back to each client address; returns the peers it saw."""
    now = 0
    lsock = server.tcp_listen(None, 80)
    conns = {ip: client.tcp_connect((server_ip, 80), src=ip, now_us=now) for ip in client_ips}
    accepted = []
    now = _pump([client, server], now, lambda: (h := server.tcp_accept(lsock)) is not None and
                not accepted.append(h) and len(accepted) == len(client_ips))
    peers = {server.tcp_info(h)["remote"][0]: h for h in accepted}
    assert sorted(peers) == sorted(client_ips)
    for ip, h in conns.items():
        info = client.tcp_info(h)
        assert info["state"] == "ESTABLISHED" and info["local"][0] == ip
        client.tcp_send(h, ip.encode(), now)
    got = {}
    now = _pump([client, server], now, lambda: [got.update({ip: server.tcp_recv(h)}) for ip, h in peers.items()
                                                if ip not in got and server.tcp_info(h)["bytes_readable"]]
                is not None and len(got) == len(peers))
    assert got == {ip: ip.encode() for ip in client_ips}
    # the other way: the client listens on each address, the server connects to each
    back = {ip: client.tcp_listen(ip, 8000) for ip in client_ips}
    for ip in client_ips:
        server.tcp_connect((ip, 8000), now_us=now)
    done = {}
    now = _pump([client, server], now, lambda: [done.update({ip: h}) for ip, ls in back.items()
                                                if ip not in done and (h := client.tcp_accept(ls)) is not None]
                is not None and len(done) == len(back))
    assert {client.tcp_info(h)["local"][0] for h in done.values()} == set(client_ips)
    return peers


def test_tcp_from_and_to_each_address_over_a_pair():
    a, b = open_pair()
    client, server = Stack(seed=1), Stack(seed=2)
    try:
        client.add_interface(a, ip="10.1.0.2-10.1.0.5/24")
        server.add_interface(b, ip="10.1.0.1/24")
        ips = [f"10.1.0.{i}" for i in range(2, 6)]
        _connections_from_each_address(client, server, ips, "10.1.0.1")
        # the server learned every client address by ARP
        assert server.stats()["arp_entries"] == 4
    finally:
        client.close()
        server.close()
        a.close()
        b.close()


def test_tcp_from_and_to_each_address_over_shm():
    name = unique("rsaddr")
    try:
        server = Stack([f"shm:{name},ip=10.9.2.1/24"], seed=2)
    except OSError as e:
        skip_if_enosys(e, "shm")
    try:
        client = Stack([f"shm:{name},ip=10.9.2.10+10.9.2.20+10.9.2.30/24"], seed=1)
        try:
            _connections_from_each_address(client, server, ["10.9.2.10", "10.9.2.20", "10.9.2.30"], "10.9.2.1")
        finally:
            client.close()
    finally:
        server.close()


def test_connect_to_own_secondary_address_is_local():
    with Stack(["loopback,ip=10.5.0.1-10.5.0.2/24"], seed=3) as s:
        ls = s.tcp_listen("10.5.0.2", 90)
        c = s.tcp_connect(("10.5.0.2", 90), src="10.5.0.1")
        got = []
        _pump([s], s.now_us(), lambda: (h := s.tcp_accept(ls)) is not None and not got.append(h))
        assert s.tcp_info(got[0])["remote"] == s.tcp_info(c)["local"]
        assert s.tcp_info(c)["local"][0] == "10.5.0.1"
