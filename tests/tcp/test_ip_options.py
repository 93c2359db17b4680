"""IPv4 options on received datagrams (RFC 791 3.1): well-formed ones are skipped, a
malformed list drops the datagram (ip_bad_options), as Linux's ip_options_compile
does, and a source route drops it too (ip_source_routed; RFC 7126 4.3-4.4, Linux's
accept_source_route 0). Each case is a SYN to a listener: a SYN-ACK means accepted."""

import pytest

from _pkt import ETH_IP, eth, ipv4
from _script import PEER_IP, PEER_MAC, STACK_IP, SYN, Peer, tcp_options, tcp_segment

ADDR = b"\0\0\0\0"


@pytest.fixture
def p():
    peer = Peer()
    peer.listen(80)
    yield peer
    peer.close()


def syn_with_ip_options(p, options):
    assert len(options) % 4 == 0
    seg = tcp_segment(PEER_IP, STACK_IP, 40000, 80, 1000, 0, SYN, 65535, options=tcp_options(mss=1460))
    p.inject_raw(eth(p.stack_mac, PEER_MAC, ETH_IP, ipv4(PEER_IP, STACK_IP, 6, seg, options=options)))
    return p.segments()


@pytest.mark.parametrize("options", [
    b"\x01\x01\x01\x00",                            # NOP NOP NOP EOL
    b"\x00\xff\xff\xff",                            # EOL: what follows is padding, not read
    b"\x94\x04\x00\x00",                            # router alert (RFC 2113)
    b"\x07\x07\x04" + ADDR + b"\x00",               # record route with room for one address
    b"\x07\x07\x08" + ADDR + b"\x00",               # ... and full (pointer past the end)
    b"\x44\x0c\x05\x00" + ADDR + ADDR,              # timestamp, room for two
], ids=["nops", "eol-padding", "router-alert", "record-route", "record-route-full", "timestamp"])
def test_well_formed_options_are_skipped(p, options):
    segs = syn_with_ip_options(p, options)
    assert len(segs) == 1 and segs[0].flag_str == "SA"
    st = p.stack.stats()
    assert st["ip_bad_options"] == 0 and st["ip_source_routed"] == 0


@pytest.mark.parametrize("options", [
    b"\x94\x00\x00\x00",                            # length 0
    b"\x94\x01\x00\x00",                            # length 1 (counts less than type + length)
    b"\x94\x08\x00\x00",                            # runs past the header
    b"\x01\x01\x01\x94",                            # a type with no room for its length
    b"\x07\x02\x00\x00",                            # record route without a pointer
    b"\x07\x07\x03" + ADDR + b"\x00",               # record route pointer below 4
    b"\x07\x07\x06" + ADDR + b"\x00",               # ... pointing inside an address slot
    b"\x07\x03\x04\x07\x03\x04\x00\x00",            # two record routes
    b"\x44\x08\x04\x00" + ADDR,                     # timestamp pointer below 5
    b"\x44\x03\x05\x00",                            # timestamp shorter than its fixed part
], ids=["len0", "len1", "past-header", "no-length", "rr-short", "rr-ptr-low", "rr-ptr-partial", "rr-twice",
        "ts-ptr-low", "ts-short"])
def test_malformed_options_drop_the_datagram(p, options):
    assert syn_with_ip_options(p, options) == []
    st = p.stack.stats()
    assert st["ip_bad_options"] == 1
    assert st["tcp_rx"] == 0


@pytest.mark.parametrize("kind", [0x83, 0x89], ids=["loose", "strict"])
def test_source_routed_datagram_is_dropped(p, kind):
    assert syn_with_ip_options(p, bytes([kind, 7, 4]) + ADDR + b"\x00") == []
    st = p.stack.stats()
    assert st["ip_source_routed"] == 1 and st["ip_bad_options"] == 0
    assert st["tcp_rx"] == 0
