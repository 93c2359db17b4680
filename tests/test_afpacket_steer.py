"""AF_PACKET flow steering: queue K of N keeps the frames whose symmetric flow hash
(aiorusty/testbed/steer.py, the same as the shm link's) is K; ARP reaches every queue;
other non-IPv4 frames reach queue 0. Frames come from a raw socket on the veth peer in
a namespace we create; each carries its index, so we see which queue got which frame."""

import errno
import random
import select
import struct
import time

import pytest
from _netns import needs_root, sh
from _pkt import arp, eth, ipv4, udp
from test_afpacket import link, peer_socket
from test_tap import mac_bytes, opened

from aiorusty.nic import Interface, InterfaceSpecError
from aiorusty.nic._device import _config, _open_driver
from aiorusty.testbed.steer import flow_queue

pytestmark = [needs_root, pytest.mark.timeout(60)]

MARK = b"steer!"


def tcp(sport, dport, payload):
    """A TCP segment (checksum left 0: the filter and the driver do not look at it)."""
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload


def frames(dev_mac, peer_mac, net, rng):
    """[(frame, expected queue of 2 and 3 or 'all' / 'first')] with varied addresses and ports."""
    out = []
    dst, src = mac_bytes(dev_mac), peer_mac

    def add(frame, key):
        out.append((frame, key))

    for i in range(160):
        saddr = f"{net}.{rng.randrange(1, 255)}" if i % 4 else f"10.{rng.randrange(256)}.{rng.randrange(256)}.9"
        daddr = f"{net}.2"
        sport, dport = rng.randrange(1024, 65536), rng.choice((80, 8080, 7, rng.randrange(1, 65536)))
        payload = MARK + len(out).to_bytes(4, "big")
        kind = i % 4
        if kind == 0:
            l4, proto, opts, frag = udp(saddr, daddr, sport, dport, payload), 17, b"", 0x4000
        elif kind == 1:
            l4, proto, opts, frag = tcp(sport, dport, payload), 6, b"", 0x4000
        elif kind == 2:     # IP options: the ports sit after a longer header (IHL-relative load)
            l4, proto, opts, frag = tcp(sport, dport, payload), 6, b"\x01" * (4 * rng.randrange(1, 11)), 0x4000
        else:               # a later fragment has no ports: hashed on the addresses alone
            l4, proto, opts, frag = udp(saddr, daddr, sport, dport, payload), 17, b"", 0x2000 | rng.randrange(1, 100)
        ports = (sport, dport) if frag & 0x1FFF == 0 else (0, 0)
        add(eth(dst, src, 0x0800, ipv4(saddr, daddr, proto, l4, options=opts, frag=frag)), ("flow", saddr, daddr, *ports))
    # ICMP: no ports, a flow of its own addresses.
    add(eth(dst, src, 0x0800, ipv4(f"{net}.1", f"{net}.2", 1, b"\x08\x00\x00\x00" + MARK + len(out).to_bytes(4, "big"))),
        ("flow", f"{net}.1", f"{net}.2", 0, 0))
    for _ in range(3):       # ARP: every queue
        add(eth(b"\xff" * 6, src, 0x0806, arp(1, src, f"{net}.1", b"\0" * 6, f"{net}.2") + MARK
                + len(out).to_bytes(4, "big")), ("all",))
    for _ in range(3):       # neither IPv4 nor ARP (IPv6 ethertype): queue 0
        add(eth(dst, src, 0x86DD, b"\x60" + b"\0" * 39 + MARK + len(out).to_bytes(4, "big")), ("first",))
    return out


def expected(key, n):
    if key[0] == "all":
        return set(range(n))
    if key[0] == "first":
        return {0}
    return {flow_queue(key[1], key[2], key[3], key[4], n)}


def gather(devs_queues, total, timeout=5.0):
    """{frame index: set of positions in devs_queues that received it} until `total` receipts."""
    got, count = {}, 0
    fds = [d.fileno(q) for d, q in devs_queues]
    deadline = time.monotonic() + timeout
    while count < total and time.monotonic() < deadline:
        idle = True
        for pos, (d, q) in enumerate(devs_queues):
            f = d.recv(q)
            if f is None:
                continue
            idle = False
            at = f.find(MARK)
            if at >= 0:
                idx = int.from_bytes(f[at + len(MARK):at + len(MARK) + 4], "big")
                assert pos not in got.setdefault(idx, set()), f"frame {idx} twice on queue {pos}"
                got[idx].add(pos)
                count += 1
        if idle:
            select.select(fds, [], [], 0.01)
    return got


def check_steering(devs_queues, ns, b, net, seed):
    n = len(devs_queues)
    dev = devs_queues[0][0]
    peer_mac = mac_bytes(sh("cat", f"/sys/class/net/{b}/address", ns=ns).stdout.strip())
    todo = frames(dev.info()["mac"], peer_mac, net, random.Random(seed))
    want = {i: expected(key, n) for i, (_, key) in enumerate(todo)}
    with peer_socket(ns, b) as s:
        for f, _ in todo:
            s.send(f)
    got = gather(devs_queues, sum(len(w) for w in want.values()))
    wrong = {i: (got.get(i), w, todo[i][1]) for i, w in want.items() if got.get(i) != w}
    assert not wrong, wrong
    flows = [k for _, k in todo if k[0] == "flow"]
    per_queue = [sum(1 for k in flows if expected(k, n) == {q}) for q in range(n)]
    assert min(per_queue) > 0, per_queue     # the test covers every queue


def test_two_workers_get_the_flows_the_python_hash_predicts():
    with link() as (ns, a, b, net), opened(f"afpacket:{a},queues=2,queue=0") as w0, \
            opened(f"afpacket:{a},queues=2,queue=1") as w1:
        assert w0.info()["mac"] == w1.info()["mac"]      # one MAC for the peer's ARP cache
        check_steering([(w0, 0), (w1, 0)], ns, b, net, seed=1)


def test_three_queues_in_one_process_steer_the_same_way():
    with link() as (ns, a, b, net), opened(f"afpacket:{a},queues=3") as dev:
        check_steering([(dev, 0), (dev, 1), (dev, 2)], ns, b, net, seed=2)


def test_workers_of_different_groups_do_not_interfere():
    """Queue 0 of 2 and queue 0 of 3 on one interface are independent filters, not one
    fanout group: each gets its own share (ARP included)."""
    with link() as (ns, a, b, net), opened(f"afpacket:{a},queues=2,queue=0") as x, \
            opened(f"afpacket:{a},queues=3,queue=0") as y, opened(f"afpacket:{a}") as whole:
        peer_mac = mac_bytes(sh("cat", f"/sys/class/net/{b}/address", ns=ns).stdout.strip())
        todo = frames(x.info()["mac"], peer_mac, net, random.Random(3))
        with peer_socket(ns, b) as s:
            for f, _ in todo:
                s.send(f)
        for dev, n in ((x, 2), (y, 3), (whole, 1)):
            want = {i for i, (_, key) in enumerate(todo) if 0 in expected(key, n)}
            got = gather([(dev, 0)], len(want))
            assert set(got) == want, (n, sorted(set(got) ^ want))


def test_queue_beyond_queues_is_refused():
    with link() as (_, a, _, _):
        with pytest.raises(InterfaceSpecError, match="queue=1 but only 1 queues"):
            Interface.parse(f"afpacket:{a},queue=1")          # N missing: a share of what?
        iface = Interface(driver="afpacket", target=a, queue=1)   # past the spec check: the driver refuses too
        with pytest.raises(OSError) as e:
            _open_driver(iface, _config(iface))
        assert e.value.errno == errno.EINVAL
        assert "queue=K needs queues=N with K < N" in str(e.value)
