"""An on-link next hop that never answers ARP (RFC 826 resolution failing after three
requests, 1 s apart: Linux's mcast_probes 3 and retrans_time 1 s): what the senders of
the packets held for it hear, as on Linux (neigh_invalidate -> arp_error_report ->
ipv4_link_failure, an ICMP host unreachable to ourselves). A connect fails with
EHOSTUNREACH, not ETIMEDOUT two minutes later; a UDP socket gets a soft error event,
which a socket without IP_RECVERR (asyncio's) does not see. Time is virtual here; the
loop test (tests/loop/test_tcp.py, test_connect_to_silent_neighbour_...) meets the same
over the loop, in real time."""

import errno

import pytest

from aiorusty._rusty import lib
from aiorusty.nic import open_pair
from aiorusty.tcp import Stack

from _pkt import BROADCAST, ETH_ARP, ETH_IP, arp, drain, eth, mac

ME = "10.0.0.2"
SILENT = "10.0.0.9"                     # on the link, never answers
PEER = "10.0.0.1"
PEER_MAC = mac("02:00:00:00:00:01")
T0 = 1_000_000
SEC = 1_000_000


@pytest.fixture
def link():
    a, b = open_pair()
    s = Stack(seed=7)
    s.add_interface(a, ip=f"{ME}/24", now_us=T0)
    drain(b)
    try:
        yield s, b
    finally:
        s.close()
        a.close()
        b.close()


def run_until(s, end, step=100_000, start=T0):
    events = []
    for now in range(start, end + 1, step):
        events += s.poll(now)
    return events


def arp_requests_for(frames, ip):
    return [f for f in frames if f.type == ETH_ARP and f.arp["op"] == 1 and f.arp["tpa"] == ip]


def test_connect_to_silent_neighbour_fails_with_ehostunreach(link):
    s, b = link
    h = s.tcp_connect((SILENT, 80), now_us=T0)
    events = run_until(s, T0 + 5 * SEC)
    closed = [e for e in events if e[0] == h and e[1] == lib.RUSTY_EV_TCP_CLOSED]
    assert [e[3] for e in closed] == [-errno.EHOSTUNREACH]
    assert not [e for e in events if e[1] == lib.RUSTY_EV_TCP_CONNECTED]
    frames = drain(b)
    assert len(arp_requests_for(frames, SILENT)) == 3
    assert not [f for f in frames if f.type == ETH_IP]     # the SYNs never left: nowhere to send them
    st = s.stats()
    assert st["arp_unresolved_drops"] >= 1 and st["arp_entries"] == 0


def test_udp_to_silent_neighbour_reports_a_soft_error(link):
    s, b = link
    h = s.udp_bind(None, 0)
    s.udp_sendto(h, b"anyone?", (SILENT, 9), now_us=T0)
    events = run_until(s, T0 + 5 * SEC)
    assert [(e[0], e[1], e[2], e[3]) for e in events] == [
        (h, lib.RUSTY_EV_UDP_ERROR, lib.RUSTY_EV_F_SOFT, -errno.EHOSTUNREACH)]


def test_a_late_answer_sends_what_was_held(link):
    """Resolution that succeeds on the third request reports nothing."""
    s, b = link
    h = s.tcp_connect((SILENT, 80), now_us=T0)
    events = run_until(s, T0 + 2 * SEC + 500_000)
    assert len(arp_requests_for(drain(b), SILENT)) == 3
    silent_mac = mac("02:00:00:00:00:09")
    b.send(eth(BROADCAST, silent_mac, ETH_ARP, arp(2, silent_mac, SILENT, b"\0" * 6, ME)))
    events += run_until(s, T0 + 5 * SEC, start=T0 + 2 * SEC + 600_000)
    assert not [e for e in events if e[0] == h and e[1] == lib.RUSTY_EV_TCP_CLOSED]
    syns = [f for f in drain(b) if f.type == ETH_IP and f.dst == silent_mac]
    assert syns and s.stats()["arp_unresolved_drops"] == 0
