"""The stack over an in-process pair: the test holds one end and speaks
hand-built frames (tests/_pkt.py); time is explicit (now_us)."""

import errno

import pytest

from aiorusty._rusty import lib
from aiorusty.nic import open_pair
from aiorusty.tcp import Stack

from _pkt import BROADCAST, ETH_ARP, ETH_IP, arp, drain, echo_request, eth, icmp, ipv4, mac, udp

ME = "10.0.0.2"
PEER = "10.0.0.1"
PEER_MAC = mac("02:00:00:00:00:01")
T0 = 1_000_000
SEC = 1_000_000


@pytest.fixture
def link():
    a, b = open_pair()
    s = Stack(seed=7, arp_timeout_us=30 * SEC)
    s.add_interface(a, ip=f"{ME}/24", now_us=T0)
    try:
        yield s, b, a.info()["mac"]
    finally:
        s.close()
        a.close()
        b.close()


def stack_mac(link):
    return mac(link[2])


def resolve(link, now=T0):
    """Teach the stack the peer's MAC with an ARP request for its address; returns the reply."""
    s, b, _ = link
    drain(b)
    b.send(eth(BROADCAST, PEER_MAC, ETH_ARP, arp(1, PEER_MAC, PEER, b"\0" * 6, ME)))
    s.poll(now)
    frames = drain(b)
    assert len(frames) == 1 and frames[0].arp is not None
    return frames[0]


def test_gratuitous_arp_at_start(link):
    s, b, smac = link
    frames = drain(b)
    assert len(frames) == 1
    f = frames[0]
    assert f.dst == BROADCAST and f.type == ETH_ARP
    assert f.arp["op"] == 1 and f.arp["spa"] == ME and f.arp["tpa"] == ME and f.arp["sha"] == mac(smac)
    assert s.stats()["arp_tx_requests"] == 1


def test_arp_reply_and_learn(link):
    s, b, smac = link
    reply = resolve(link)
    assert reply.dst == PEER_MAC and reply.arp["op"] == 2
    assert reply.arp["sha"] == mac(smac) and reply.arp["spa"] == ME
    assert reply.arp["tha"] == PEER_MAC and reply.arp["tpa"] == PEER
    st = s.stats()
    assert st["arp_entries"] == 1 and st["arp_tx_replies"] == 1
    # learned: a datagram to the peer goes out at once, no request
    h = s.udp_bind(ME, 0)
    s.udp_sendto(h, b"x", (PEER, 9), now_us=T0 + 1)
    s.poll(T0 + 1)
    frames = drain(b)
    assert [f.type for f in frames] == [ETH_IP] and frames[0].dst == PEER_MAC


def test_arp_request_for_other_address_ignored(link):
    s, b, _ = link
    drain(b)
    b.send(eth(BROADCAST, PEER_MAC, ETH_ARP, arp(1, PEER_MAC, PEER, b"\0" * 6, "10.0.0.77")))
    s.poll(T0)
    assert drain(b) == []
    assert s.stats()["arp_entries"] == 0


def test_ping_from_peer_resolves_and_holds(link):
    s, b, smac = link
    drain(b)
    # Echo request without prior ARP: the stack must resolve the peer first, holding the reply.
    data = bytes(range(56))
    b.send(eth(mac(smac), PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, echo_request(0x1234, 1, data))))
    s.poll(T0)
    frames = drain(b)
    assert len(frames) == 1 and frames[0].arp and frames[0].arp["op"] == 1 and frames[0].arp["tpa"] == PEER
    assert frames[0].dst == BROADCAST
    b.send(eth(mac(smac), PEER_MAC, ETH_ARP, arp(2, PEER_MAC, PEER, mac(smac), ME)))
    s.poll(T0 + 1000)
    frames = drain(b)
    assert len(frames) == 1
    f = frames[0]
    assert f.dst == PEER_MAC and f.ip["src"] == ME and f.ip["dst"] == PEER and f.ip["csum_ok"]
    assert f.ip["ttl"] == 64 and f.ip["frag"] & 0x4000
    assert f.icmp["type"] == 0 and f.icmp["rest"] == (0x1234 << 16) | 1 and f.icmp["data"] == data
    assert f.icmp["csum_ok"]
    st = s.stats()
    assert st["icmp_echo_requests"] == 1 and st["icmp_tx"] == 1


def test_hold_queue_is_bounded(link):
    s, b, smac = link
    drain(b)
    h = s.udp_bind(None, 5000)
    hold_max = 256                              # arp.c HOLD_MAX
    for i in range(hold_max + 2):
        s.udp_sendto(h, b"%05d" % i, (PEER, 6000), now_us=T0)
    s.poll(T0)
    frames = drain(b)
    assert len(frames) == 1 and frames[0].arp  # one request, not one per datagram
    assert s.stats()["arp_unresolved_drops"] == 2
    b.send(eth(mac(smac), PEER_MAC, ETH_ARP, arp(2, PEER_MAC, PEER, mac(smac), ME)))
    s.poll(T0 + 10)
    frames = drain(b)
    # the newest hold_max, in order
    assert [int(bytes(f.udp["data"][:5])) for f in frames] == list(range(2, hold_max + 2))
    assert all(f.udp["csum_ok"] and f.udp["csum"] != 0 for f in frames)


def test_arp_retries_then_drop(link):
    s, b, _ = link
    drain(b)
    h = s.udp_bind(None, 0)
    s.udp_sendto(h, b"hello", ("10.0.0.9", 53), now_us=T0)
    s.poll(T0)
    assert len([f for f in drain(b) if f.arp]) == 1
    assert s.next_deadline(T0) == T0 + SEC
    s.poll(T0 + SEC)
    s.poll(T0 + 2 * SEC)
    requests = [f for f in drain(b) if f.arp]
    assert len(requests) == 2 and all(f.arp["tpa"] == "10.0.0.9" for f in requests)
    assert s.stats()["arp_unresolved_drops"] == 0
    s.poll(T0 + 3 * SEC)
    assert drain(b) == []
    st = s.stats()
    assert st["arp_unresolved_drops"] == 1 and st["arp_entries"] == 0 and st["arp_tx_requests"] == 4


def test_arp_entry_goes_stale_and_is_revalidated(link):
    s, b, smac = link
    resolve(link, T0)
    h = s.udp_bind(None, 0)
    later = T0 + 31 * SEC  # past arp_timeout_us: REACHABLE -> STALE
    s.poll(later)
    assert s.stats()["arp_entries"] == 1
    s.udp_sendto(h, b"x", (PEER, 9), now_us=later)
    s.poll(later)
    frames = drain(b)
    # the datagram still goes out at once, plus a unicast ARP probe (RFC 1122 2.3.2.1)
    assert sorted(f.type for f in frames) == [ETH_IP, ETH_ARP]
    probe = next(f for f in frames if f.arp)
    assert probe.dst == PEER_MAC and probe.arp["op"] == 1 and probe.arp["tpa"] == PEER
    # no answer to 3 probes: the entry is freed
    for k in range(1, 4):
        s.poll(later + k * SEC)
    assert s.stats()["arp_entries"] == 0
    assert len([f for f in drain(b) if f.arp]) == 2


def test_udp_echo(link):
    s, b, smac = link
    resolve(link)
    h = s.udp_bind(None, 7)
    assert s.udp_getsockname(h) == ("0.0.0.0", 7)
    for i in range(3):
        b.send(eth(mac(smac), PEER_MAC, ETH_IP, ipv4(PEER, ME, 17, udp(PEER, ME, 40000 + i, 7, b"ping%d" % i))))
    events = s.poll(T0 + 10)
    # one READABLE per socket per poll, not one per datagram
    assert events == [(h, lib.RUSTY_EV_UDP_READABLE, 0, 0, 0)]
    got = []
    while (d := s.udp_recvfrom(h)) is not None:
        got.append(d)
        s.udp_sendto(h, d[0], d[1], now_us=T0 + 20)
    assert got == [(b"ping%d" % i, (PEER, 40000 + i)) for i in range(3)]
    s.poll(T0 + 20)
    frames = drain(b)
    assert [(f.udp["dport"], f.udp["data"]) for f in frames] == [(40000 + i, b"ping%d" % i) for i in range(3)]
    assert all(f.udp["sport"] == 7 and f.udp["csum_ok"] and f.ip["csum_ok"] for f in frames)
    s.udp_close(h)
    with pytest.raises(OSError) as e:
        s.udp_recvfrom(h)
    assert e.value.errno == errno.EBADF


def test_udp_zero_checksum_accepted_bad_checksum_dropped(link):
    s, b, smac = link
    resolve(link)
    h = s.udp_bind(ME, 7)
    b.send(eth(mac(smac), PEER_MAC, ETH_IP, ipv4(PEER, ME, 17, udp(PEER, ME, 1, 7, b"nocsum", checksum=False))))
    bad = bytearray(udp(PEER, ME, 1, 7, b"badcsum"))
    bad[6] ^= 0x40
    b.send(eth(mac(smac), PEER_MAC, ETH_IP, ipv4(PEER, ME, 17, bytes(bad))))
    s.poll(T0 + 1)
    assert s.udp_recvfrom(h) == (b"nocsum", (PEER, 1))
    assert s.udp_recvfrom(h) is None
    assert s.stats()["udp_bad_checksum"] == 1


def test_udp_queue_full(link):
    a, b = open_pair()
    s = Stack(seed=1, udp_rx_queue=2)
    try:
        s.add_interface(a, ip=f"{ME}/24", now_us=T0)
        smac = mac(a.info()["mac"])
        h = s.udp_bind(None, 7)
        for i in range(5):
            b.send(eth(smac, PEER_MAC, ETH_IP, ipv4(PEER, ME, 17, udp(PEER, ME, 1, 7, bytes([i])))))
        s.poll(T0)
        assert s.stats()["udp_queue_full"] == 3
        assert [s.udp_recvfrom(h)[0] for _ in range(2)] == [b"\0", b"\1"]
    finally:
        s.close()
        a.close()
        b.close()


def test_port_unreachable(link):
    s, b, smac = link
    resolve(link)
    dgram = udp(PEER, ME, 33333, 9999, b"anyone?")
    packet = ipv4(PEER, ME, 17, dgram)
    b.send(eth(mac(smac), PEER_MAC, ETH_IP, packet))
    s.poll(T0 + 1)
    frames = drain(b)
    assert len(frames) == 1
    f = frames[0]
    assert f.icmp["type"] == 3 and f.icmp["code"] == 3 and f.icmp["csum_ok"]
    assert f.icmp["data"] == packet[:28]  # the IPv4 header + 8 bytes
    st = s.stats()
    assert st["udp_no_port"] == 1 and st["icmp_unreachable_tx"] == 1


def test_protocol_unreachable(link):
    s, b, smac = link
    resolve(link)
    packet = ipv4(PEER, ME, 99, b"\1" * 12)
    b.send(eth(mac(smac), PEER_MAC, ETH_IP, packet))
    s.poll(T0 + 1)
    frames = drain(b)
    assert len(frames) == 1 and frames[0].icmp["type"] == 3 and frames[0].icmp["code"] == 2
    assert frames[0].icmp["data"] == packet[:28]
    assert s.stats()["ip_unknown_protocol"] == 1


def test_no_unreachable_for_broadcast_or_icmp_error(link):
    s, b, smac = link
    resolve(link)
    # broadcast datagram to a closed port: no ICMP
    b.send(eth(BROADCAST, PEER_MAC, ETH_IP, ipv4(PEER, "10.0.0.255", 17, udp(PEER, "10.0.0.255", 1, 9999, b"x"))))
    # ICMP error with an unknown protocol inside a protocol we do not speak: no ICMP about ICMP errors
    b.send(eth(mac(smac), PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, icmp(3, 1, 0, b"\0" * 28))))
    s.poll(T0 + 1)
    assert drain(b) == []


def test_unreachable_rate_limited(link):
    s, b, smac = link
    resolve(link)
    for i in range(30):
        b.send(eth(mac(smac), PEER_MAC, ETH_IP, ipv4(PEER, ME, 17, udp(PEER, ME, 1, 9000 + i, b"x"))))
    s.poll(T0 + 1)
    sent = len(drain(b))
    assert 1 <= sent < 30
    assert s.stats()["udp_no_port"] == 30


def test_icmp_error_reaches_udp_socket(link):
    s, b, smac = link
    resolve(link)
    h = s.udp_bind(None, 5353)
    s.udp_sendto(h, b"query", (PEER, 53), now_us=T0 + 1)
    s.poll(T0 + 1)
    (out,) = drain(b)
    quoted = out.ip_header + out.l4[:8]
    b.send(eth(mac(smac), PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, icmp(3, 3, 0, quoted))))
    events = s.poll(T0 + 2)
    assert events == [(h, lib.RUSTY_EV_UDP_ERROR, 0, -errno.ECONNREFUSED, 0x0A000001)]


def test_ping_from_stack(link):
    s, b, smac = link
    resolve(link)
    s.ping(PEER, 77, 3, size=24, now_us=T0 + 1)
    s.poll(T0 + 1)
    (req,) = drain(b)
    assert req.icmp["type"] == 8 and req.icmp["rest"] == (77 << 16) | 3 and len(req.icmp["data"]) == 24
    assert req.icmp["csum_ok"]
    reply = icmp(0, 0, req.icmp["rest"], req.icmp["data"])
    b.send(eth(mac(smac), PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, reply)))
    assert s.poll(T0 + 2) == [(77, lib.RUSTY_EV_ICMP_ECHO_REPLY, 0, 3, 0x0A000001)]


def test_drops_are_counted(link):
    s, b, smac = link
    resolve(link)
    me = mac(smac)
    b.send(eth(mac("02:00:00:00:00:99"), PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, echo_request(1, 1))))
    b.send(eth(me, PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, echo_request(1, 2), bad_csum=True)))
    b.send(eth(me, PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, echo_request(1, 3), frag=0x2000)))
    b.send(eth(me, PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, echo_request(1, 4), frag=0x0010)))
    b.send(eth(me, PEER_MAC, ETH_IP, ipv4(PEER, "10.0.0.3", 1, echo_request(1, 5))))
    b.send(eth(me, PEER_MAC, 0x86DD, b"\x60" + b"\0" * 50))
    b.send(eth(me, PEER_MAC, ETH_IP, b"\x45\0\0"))
    b.send(eth(me, PEER_MAC, ETH_ARP, b"\0\1\x08\0\6\4\0\1"))
    s.poll(T0 + 1)
    assert drain(b) == []
    st = s.stats()
    assert st["eth_rx_not_for_us"] == 1
    assert st["ip_bad_checksum"] == 1
    assert st["ip_fragments_dropped"] == 2
    assert st["ip_not_for_us"] == 1
    assert st["eth_rx_unknown_type"] == 1
    assert st["ip_malformed"] == 1
    assert st["arp_malformed"] == 1


def test_udp_bind_rules(link):
    s, b, _ = link
    h = s.udp_bind(None, 7)
    with pytest.raises(OSError) as e:
        s.udp_bind(ME, 7)
    assert e.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as e:
        s.udp_bind("10.0.0.50", 8)
    assert e.value.errno == errno.EADDRNOTAVAIL
    eph = s.udp_bind(ME, 0)
    ip, port = s.udp_getsockname(eph)
    assert ip == ME and 49152 <= port <= 65535
    s.udp_close(h)
    h2 = s.udp_bind(ME, 7)  # the port is free again
    assert h2 != h
    assert s.stats()["sockets"] == 2
    with pytest.raises(OSError) as e:
        s.udp_sendto(h2, b"x" * 1473, (PEER, 9), now_us=T0)
    assert e.value.errno == errno.EMSGSIZE
    with pytest.raises(OSError) as e:
        s.udp_sendto(h2, b"x", ("192.168.1.1", 9), now_us=T0)
    assert e.value.errno == errno.EHOSTUNREACH


def test_route():
    a, b = open_pair()
    with Stack(seed=1) as s:
        s.add_interface(a, ip="10.1.0.2/16", gateway="10.1.0.1", now_us=T0)
        assert s.route("10.1.0.2") == 1
        assert s.route("10.1.200.9") == 2
        assert s.route("8.8.8.8") == 2  # via the gateway
    with Stack(seed=1) as s:
        s.add_interface(a, ip="10.1.0.2/16", now_us=T0)
        assert s.route("8.8.8.8") == 0
    a.close()
    b.close()


def test_gateway_next_hop(link):
    a, b = open_pair()
    s = Stack(seed=3)
    try:
        s.add_interface(a, ip="10.1.0.2/24", gateway="10.1.0.1", now_us=T0)
        drain(b)
        h = s.udp_bind(None, 0)
        s.udp_sendto(h, b"x", ("192.0.2.1", 9), now_us=T0)
        s.poll(T0)
        (req,) = drain(b)
        assert req.arp["tpa"] == "10.1.0.1"  # resolve the gateway, not the destination
    finally:
        s.close()
        a.close()
        b.close()


def test_two_stacks_ping_and_udp():
    a, b = open_pair()
    s1, s2 = Stack(seed=1), Stack(seed=2)
    try:
        s1.add_interface(a, ip="10.5.0.1/24", now_us=T0)
        s2.add_interface(b, ip="10.5.0.2/24", now_us=T0)
        s1.ping("10.5.0.2", 9, 1, now_us=T0)
        replies = []
        for t in range(T0, T0 + 10):
            s2.poll(t)
            replies += s1.poll(t)
        assert (9, lib.RUSTY_EV_ICMP_ECHO_REPLY, 0, 1, 0x0A050002) in replies
        h1 = s1.udp_bind(None, 1111)
        h2 = s2.udp_bind("10.5.0.2", 2222)
        s1.udp_sendto(h1, b"hello", ("10.5.0.2", 2222), now_us=T0 + 20)
        ev = []
        for t in range(T0 + 20, T0 + 25):
            s1.poll(t)
            ev += s2.poll(t)
        assert (h2, lib.RUSTY_EV_UDP_READABLE, 0, 0, 0) in ev
        assert s2.udp_recvfrom(h2) == (b"hello", ("10.5.0.1", 1111))
        s2.udp_sendto(h2, b"world", ("10.5.0.1", 1111), now_us=T0 + 30)
        for t in range(T0 + 30, T0 + 35):
            s2.poll(t)
            s1.poll(t)
        assert s1.udp_recvfrom(h1) == (b"world", ("10.5.0.2", 2222))
        assert s1.stats()["arp_tx_requests"] >= 2  # announcement + resolution
    finally:
        s1.close()
        s2.close()
        a.close()
        b.close()


def test_stack_owns_spec_devices_and_closes():
    s = Stack(["loopback,ip=10.9.0.1/24"], seed=1)
    assert len(s.devices) == 1 and s.interfaces[0].ip.ip.packed == bytes([10, 9, 0, 1])
    assert s.fds()
    st = s.stats()
    assert st["pool_free"] > 0 and "devices" in st
    s.close()
    s.close()
    assert s.closed
    with pytest.raises(ValueError):
        s.poll()


def test_config_errors():
    with pytest.raises(TypeError):
        Stack(not_an_option=1)
    with pytest.raises(ValueError):
        Stack(["loopback"])  # no ip=


def test_local_delivery_to_own_address(link):
    """Datagrams to our own address never touch the device (the stack's own "lo")."""
    s, b, _ = link
    drain(b)
    server = s.udp_bind(ME, 7)
    client = s.udp_bind(None, 0)
    s.udp_sendto(client, b"to myself", (ME, 7), now_us=T0)
    s.ping(ME, 5, 1, now_us=T0)
    assert s.next_deadline(T0) == T0
    events = s.poll(T0)
    assert (server, lib.RUSTY_EV_UDP_READABLE, 0, 0, 0) in events
    assert (5, lib.RUSTY_EV_ICMP_ECHO_REPLY, 0, 1, 0x0A000002) in events
    _, cport = s.udp_getsockname(client)
    assert s.udp_recvfrom(server) == (b"to myself", (ME, cport))
    assert drain(b) == []
    # a closed local port answers with port unreachable, which reaches the sender as an error
    s.udp_sendto(client, b"anyone?", (ME, 9), now_us=T0 + 1)
    events = s.poll(T0 + 1)
    assert (client, lib.RUSTY_EV_UDP_ERROR, 0, -errno.ECONNREFUSED, 0x0A000002) in events
    assert drain(b) == []


def test_gratuitous_arp_updates_entry(link):
    """RFC 826 merge rule: a known sender's new MAC replaces the old one, even when
    the packet is not for us (a gratuitous ARP / RFC 5227 announcement)."""
    s, b, _ = link
    resolve(link)
    new_mac = mac("02:00:00:00:00:42")
    b.send(eth(BROADCAST, new_mac, ETH_ARP, arp(1, new_mac, PEER, b"\0" * 6, PEER)))
    s.poll(T0 + 1)
    assert drain(b) == []  # not addressed to us: no reply
    h = s.udp_bind(None, 0)
    s.udp_sendto(h, b"x", (PEER, 9), now_us=T0 + 2)
    s.poll(T0 + 2)
    (f,) = drain(b)
    assert f.dst == new_mac


def test_unknown_sender_not_learned_from_foreign_request(link):
    s, b, _ = link
    drain(b)
    b.send(eth(BROADCAST, PEER_MAC, ETH_ARP, arp(1, PEER_MAC, PEER, b"\0" * 6, "10.0.0.3")))
    s.poll(T0 + 1)
    assert s.stats()["arp_entries"] == 0


def test_address_probe_is_defended(link):
    """RFC 5227 2.1.1: a probe (sender 0.0.0.0) for our address gets a reply, and teaches nothing."""
    s, b, smac = link
    drain(b)
    b.send(eth(BROADCAST, PEER_MAC, ETH_ARP, arp(1, PEER_MAC, "0.0.0.0", b"\0" * 6, ME)))
    s.poll(T0 + 1)
    (f,) = drain(b)
    assert f.arp["op"] == 2 and f.arp["spa"] == ME and f.dst == PEER_MAC
    assert s.stats()["arp_entries"] == 0


def test_events_beyond_queue_are_counted():
    a, b = open_pair()
    s = Stack(seed=1, event_queue=2)
    try:
        s.add_interface(a, ip=f"{ME}/24", now_us=T0)
        smac = mac(a.info()["mac"])
        socks = [s.udp_bind(None, 7000 + i) for i in range(4)]
        for i in range(4):
            b.send(eth(smac, PEER_MAC, ETH_IP, ipv4(PEER, ME, 17, udp(PEER, ME, 1, 7000 + i, b"x"))))
        events = s.poll(T0)
        assert [e[0] for e in events] == socks[:2]
        assert s.stats()["events_dropped"] == 2
    finally:
        s.close()
        a.close()
        b.close()


def test_garbage_collected_stack_frees_before_its_devices():
    import gc

    s = Stack(["loopback,ip=10.9.0.1/24"], seed=1)
    h = s.udp_bind(None, 7)
    s.udp_sendto(h, b"held in the queue", ("10.9.0.1", 7), now_us=T0)
    s.poll(T0)  # the datagram now sits in the socket's queue, a buffer of the device's pool
    s.ping("10.9.0.77", 1, 1, now_us=T0)  # and one held by ARP
    del s
    gc.collect()


def test_device_closed_under_stack_does_not_crash(caplog):
    a, b = open_pair()
    s = Stack(seed=1)
    s.add_interface(a, ip=f"{ME}/24", now_us=T0)
    s.ping(PEER, 1, 1, now_us=T0)  # held by ARP: a buffer from a's pool
    a.close()
    s.close()
    assert "closed before the stack" in caplog.text
    b.close()


def test_point_to_point_slash31_has_no_broadcast():
    """RFC 3021: on a /31 both addresses are hosts; the 'broadcast' one is a peer."""
    a, b = open_pair()
    s = Stack(seed=1)
    try:
        s.add_interface(a, ip="10.3.0.0/31", now_us=T0)
        smac = mac(a.info()["mac"])
        drain(b)
        b.send(eth(BROADCAST, PEER_MAC, ETH_ARP, arp(1, PEER_MAC, "10.3.0.1", b"\0" * 6, "10.3.0.0")))
        b.send(eth(smac, PEER_MAC, ETH_IP, ipv4("10.3.0.1", "10.3.0.0", 1, echo_request(2, 2))))
        s.poll(T0)
        frames = drain(b)
        assert [f.type for f in frames] == [ETH_ARP, ETH_IP]
        assert frames[1].dst == PEER_MAC and frames[1].icmp["type"] == 0
    finally:
        s.close()
        a.close()
        b.close()


def test_time_exceeded_and_foreign_quotes(link):
    s, b, smac = link
    resolve(link)
    h = s.udp_bind(None, 5353)
    s.udp_sendto(h, b"query", ("10.0.0.1", 53), now_us=T0 + 1)
    s.poll(T0 + 1)
    (out,) = drain(b)
    quoted = out.ip_header + out.l4[:8]
    # time exceeded from a router: EHOSTUNREACH, a soft error
    b.send(eth(mac(smac), PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, icmp(11, 0, 0, quoted))))
    # an error about a datagram we never sent (source not ours): ignored
    foreign = ipv4("10.0.0.9", PEER, 17, udp("10.0.0.9", PEER, 5353, 53, b"q"))[:28]
    b.send(eth(mac(smac), PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, icmp(3, 3, 0, foreign))))
    # a truncated quote (less than 8 bytes of the datagram): malformed
    b.send(eth(mac(smac), PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, icmp(3, 3, 0, quoted[:24]))))
    events = s.poll(T0 + 2)
    assert events == [(h, lib.RUSTY_EV_UDP_ERROR, lib.RUSTY_EV_F_SOFT, -errno.EHOSTUNREACH, 0x0A000001)]
    assert s.stats()["icmp_malformed"] == 1


def test_echo_to_broadcast_is_ignored(link):
    s, b, smac = link
    resolve(link)
    b.send(eth(BROADCAST, PEER_MAC, ETH_IP, ipv4(PEER, "10.0.0.255", 1, echo_request(3, 1))))
    b.send(eth(BROADCAST, PEER_MAC, ETH_IP, ipv4(PEER, "255.255.255.255", 1, echo_request(3, 2))))
    s.poll(T0 + 1)
    assert drain(b) == []
    assert s.stats()["icmp_echo_requests"] == 0


def test_broadcast_udp_reaches_wildcard_socket_only(link):
    s, b, smac = link
    wild = s.udp_bind(None, 67)
    exact = s.udp_bind(ME, 68)
    b.send(eth(BROADCAST, PEER_MAC, ETH_IP, ipv4(PEER, "255.255.255.255", 17, udp(PEER, "255.255.255.255", 1, 67, b"a"))))
    b.send(eth(BROADCAST, PEER_MAC, ETH_IP, ipv4(PEER, "10.0.0.255", 17, udp(PEER, "10.0.0.255", 1, 68, b"b"))))
    s.poll(T0 + 1)
    assert s.udp_recvfrom(wild) == (b"a", (PEER, 1))
    assert s.udp_recvfrom(exact) is None
    st = s.stats()
    assert st["udp_no_port"] == 1 and st["icmp_unreachable_tx"] == 0


def test_gleaning_keeps_a_used_entry_reachable(link):
    """IPv4 frames from the neighbour's known MAC confirm its entry: no probe after the timeout."""
    s, b, smac = link
    resolve(link, T0)
    h = s.udp_bind(None, 7)
    t = T0
    for _ in range(4):  # traffic from the peer every 20 s, arp_timeout_us is 30 s
        t += 20 * SEC
        b.send(eth(mac(smac), PEER_MAC, ETH_IP, ipv4(PEER, ME, 17, udp(PEER, ME, 1, 7, b"x"))))
        s.poll(t)
        s.udp_sendto(h, b"y", (PEER, 1), now_us=t)
        s.poll(t)
    frames = drain(b)
    assert [f for f in frames if f.arp] == []
    assert len(frames) == 4


@pytest.mark.parametrize("budget, burst, polls", [(None, None, [100]), (40, 16, [40, 80, 100])])
def test_rx_budget_bounds_the_frames_of_one_poll(budget, burst, polls):
    # A poll drains each queue in rx_burst bursts up to rx_budget frames (default
    # 256), then ends so timers and output run; the rest waits for the next poll.
    a, b = open_pair(ring=512)
    config = {} if budget is None else {"rx_budget": budget, "rx_burst": burst}
    s = Stack(seed=1, udp_rx_queue=512, **config)
    try:
        s.add_interface(a, ip=f"{ME}/24", now_us=T0)
        smac = mac(a.info()["mac"])
        h = s.udp_bind(None, 7)
        for i in range(100):
            b.send(eth(smac, PEER_MAC, ETH_IP, ipv4(PEER, ME, 17, udp(PEER, ME, 1, 7, i.to_bytes(2, "big")))))
        base = a.stats()["rx_frames"]
        seen = []
        for _ in polls:
            s.poll(T0)
            seen.append(a.stats()["rx_frames"] - base)
        assert seen == polls
        assert [s.udp_recvfrom(h)[0] for _ in range(100)] == [i.to_bytes(2, "big") for i in range(100)]
    finally:
        s.close()
        a.close()
        b.close()
