"""Property tests: random and mutated frames injected through a pair never
crash the stack, every frame is accounted for exactly once per layer, and no
frame buffer leaks (the pool is whole again once ARP gives up on held packets
and the UDP queues are drained)."""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiorusty.nic import open_pair
from aiorusty.tcp import Stack

from _pkt import BROADCAST, ETH_ARP, ETH_IP, arp, csum, echo_request, eth, icmp, ipv4, mac, udp

ME = "10.0.0.2"
PEER = "10.0.0.1"
PEER_MAC = mac("02:00:00:00:00:01")
SEC = 1_000_000


class Harness:
    def __init__(self):
        self.a, self.b = open_pair(pool=512, ring=512)
        self.stack = Stack(seed=3, arp_cache=16)
        self.now = SEC
        self.stack.add_interface(self.a, ip=f"{ME}/24", now_us=self.now)
        self.mac = mac(self.a.info()["mac"])
        self.udp = self.stack.udp_bind(None, 7)
        self.stack.poll(self.now)
        self.settle()
        self.pool_full = self.stack.stats()["pool_free"]

    def settle(self):
        """Let ARP give up on anything held, drain UDP and the test end."""
        for _ in range(5):              # INCOMPLETE entries need 3 timer runs to give up
            self.now += 10 * SEC
            self.stack.poll(self.now)
        while self.stack.udp_recvfrom(self.udp) is not None:
            pass
        while self.b.recv() is not None:
            pass

    def inject(self, frames):
        before = self.stack.stats()
        for f in frames:
            self.b.send(f)
        self.now += 1000
        events = self.stack.poll(self.now)
        after = self.stack.stats()
        self.settle()
        return before, after, events

    def close(self):
        self.stack.close()
        self.a.close()
        self.b.close()


@pytest.fixture(scope="module")
def h():
    harness = Harness()
    yield harness
    harness.close()


def delta(before, after, *keys):
    return sum(after[k] - before[k] for k in keys)


def check_accounting(h, frames):
    before, after, _ = h.inject(frames)
    n = len(frames)
    assert delta(before, after, "eth_rx_frames") == n
    # each frame is counted exactly once at the Ethernet layer ...
    assert delta(before, after, "eth_rx_malformed", "eth_rx_not_for_us", "eth_rx_unknown_type", "arp_rx",
                 "ip_rx") == n
    # ... and each IPv4 datagram exactly once at the IP layer
    assert delta(before, after, "ip_rx") == delta(
        before, after, "ip_malformed", "ip_bad_checksum", "ip_bad_options", "ip_source_routed", "ip_rx_martian",
        "ip_not_for_us", "ip_fragments_dropped", "ip_unknown_protocol", "icmp_rx", "udp_rx", "tcp_rx")
    # nothing leaked
    assert h.stack.stats()["pool_free"] == h.pool_full
    return before, after


settings_ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings_
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=8))
def test_random_frames(h, frames):
    check_accounting(h, frames)


@settings_
@given(st.lists(st.tuples(st.sampled_from([ETH_IP, ETH_ARP, 0x86DD, 0x0001]), st.binary(max_size=120)),
                min_size=1, max_size=8))
def test_random_payloads_to_our_mac(h, items):
    frames = [h.mac + PEER_MAC + struct.pack("!H", t) + body for t, body in items]
    check_accounting(h, frames)


def valid_frames(h):
    return [
        eth(h.mac, PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, echo_request(1, 1))),
        eth(h.mac, PEER_MAC, ETH_IP, ipv4(PEER, ME, 17, udp(PEER, ME, 1234, 7, b"hello fuzz"))),
        eth(h.mac, PEER_MAC, ETH_IP, ipv4(PEER, ME, 17, udp(PEER, ME, 1234, 99, b"closed port"))),
        eth(h.mac, PEER_MAC, ETH_IP, ipv4(PEER, ME, 6, bytes(20))),
        eth(h.mac, PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, icmp(3, 3, 0, ipv4(ME, PEER, 17, udp(ME, PEER, 7, 53, b"q"))))),
        eth(h.mac, PEER_MAC, ETH_IP, ipv4(PEER, ME, 1, icmp(0, 0, (5 << 16) | 9, b"reply"))),
        eth(BROADCAST, PEER_MAC, ETH_ARP, arp(1, PEER_MAC, PEER, b"\0" * 6, ME)),
        eth(h.mac, PEER_MAC, ETH_ARP, arp(2, PEER_MAC, PEER, h.mac, ME)),
        eth(BROADCAST, PEER_MAC, ETH_IP, ipv4(PEER, "10.0.0.255", 17, udp(PEER, "10.0.0.255", 1, 7, b"bcast"))),
    ]


def fix_ip_checksum(frame):
    f = bytearray(frame)
    if len(f) >= 34 and f[12:14] == b"\x08\x00" and f[14] >> 4 == 4:
        ihl = (f[14] & 15) * 4
        if 20 <= ihl and 14 + ihl <= len(f):
            f[24:26] = b"\0\0"
            f[24:26] = struct.pack("!H", csum(bytes(f[14:14 + ihl])))
    return bytes(f)


mutation = st.tuples(st.integers(0, 8), st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=4),
                     st.one_of(st.none(), st.integers(0, 100)), st.booleans())


@settings_
@given(st.lists(mutation, min_size=1, max_size=6))
def test_mutated_valid_frames(h, mutations):
    base = valid_frames(h)
    frames = []
    for which, flips, cut, fix in mutations:
        f = bytearray(base[which])
        for pos, value in flips:
            if pos < len(f):
                f[pos] = value
        if cut is not None:
            f = f[:cut]
        f = bytes(f)
        frames.append(fix_ip_checksum(f) if fix else f)
    check_accounting(h, frames)


def test_valid_frames_are_not_drops(h):
    """The baseline the mutations start from is accepted (so the fuzz reaches deep)."""
    before, after = check_accounting(h, valid_frames(h))
    assert delta(before, after, "eth_rx_malformed", "ip_malformed", "ip_bad_checksum", "ip_bad_options",
                 "ip_rx_martian", "arp_malformed", "icmp_malformed", "udp_malformed", "udp_bad_checksum") == 0
    assert delta(before, after, "icmp_echo_requests") == 1 and delta(before, after, "udp_no_port") == 1
