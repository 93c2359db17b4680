"""The AF_PACKET driver on a veth whose other end is in a namespace we create.

The driver holds the root-namespace end (no address there: the kernel keeps
the interface, the stack's MAC is its own); the Linux peer at 10.x.y.1 sits
in the namespace. Frame helpers come from test_tap.py.
"""

import contextlib
import errno
import select
import socket
import time

import pytest

from _netns import in_netns, need_tool, needs_root, netns, sh, unique, veth_pair
from aiorusty._rusty import ffi, lib
from aiorusty.nic import Interface
from aiorusty.nic._device import _open_driver
from test_tap import eth, ipv4, mac_bytes, opened, ping_exchange, subnet, udp

pytestmark = [needs_root, pytest.mark.timeout(60)]


@contextlib.contextmanager
def link():
    """(ns, root-side veth, peer veth, subnet): peer has .1/24 in ns, both ends up, no IPv6 chatter."""
    a, b, net = unique("rafa"), unique("rafb"), subnet()
    with netns() as ns, veth_pair(a, b, ns_b=ns):
        sh("sysctl", "-qw", f"net.ipv6.conf.{a}.disable_ipv6=1", check=False)
        sh("sysctl", "-qw", f"net.ipv6.conf.{b}.disable_ipv6=1", ns=ns, check=False)
        sh("ip", "addr", "add", f"{net}.1/24", "dev", b, ns=ns)
        sh("ip", "link", "set", b, "up", ns=ns)
        sh("ip", "link", "set", a, "up")
        yield ns, a, b, net


@contextlib.contextmanager
def peer_socket(ns, ifname):
    """A raw packet socket on the peer end, created inside the namespace."""
    with in_netns(ns):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
    try:
        s.bind((ifname, 0))
        yield s
    finally:
        s.close()


def udp_frames(dev_mac, peer_mac, net, count, marker, ports=1):
    for i in range(count):
        payload = marker + i.to_bytes(4, "big")
        yield eth(mac_bytes(dev_mac), peer_mac, 0x0800,
                  ipv4(f"{net}.1", f"{net}.2", 17, udp(f"{net}.1", f"{net}.2", 20000 + i % ports, 7, payload)))


def collect(devs_queues, marker, want, timeout=5.0):
    """Count frames carrying `marker` per (dev, queue) until `want` in all."""
    counts = [0] * len(devs_queues)
    fds = [d.fileno(q) for d, q in devs_queues]
    deadline = time.monotonic() + timeout
    while sum(counts) < want and time.monotonic() < deadline:
        idle = True
        for i, (d, q) in enumerate(devs_queues):
            f = d.recv(q)
            if f is not None:
                idle = False
                if marker in f:
                    counts[i] += 1
        if idle:
            select.select(fds, [], [], 0.01)
    return counts


def test_arp_and_icmp_with_peer_in_netns():
    need_tool("ping")
    with link() as (ns, a, b, net), opened(f"afpacket:{a}") as dev:
        info = dev.info()
        assert info["name"] == a and info["driver"] == "afpacket" and info["queues"] == 1
        # RX checksums from the ring's status; TX checksum, scatter-gather and TSO
        # through the side socket with the virtio-net header.
        assert info["offloads"] == (lib.RUSTY_OFF_RX_CSUM | lib.RUSTY_OFF_TX_CSUM | lib.RUSTY_OFF_TX_SG
                                    | lib.RUSTY_OFF_TSO)
        assert info["mac"] != sh("cat", f"/sys/class/net/{a}/address").stdout.strip()
        assert "promiscuity 1 " in sh("ip", "-d", "link", "show", a).stdout
        ping_exchange(dev, ns, b, net)
        st = dev.stats()
        assert st["rx_frames"] >= 3 and st["tx_frames"] >= 2 and st["rx_dropped"] == 0
    # The socket is gone, and with it the promiscuous membership.


def test_burst_of_1000_all_received():
    with link() as (ns, a, b, net), opened(f"afpacket:{a}") as dev, peer_socket(ns, b) as s:
        before = dev.stats()
        peer_mac = mac_bytes(sh("cat", f"/sys/class/net/{b}/address", ns=ns).stdout.strip())
        for f in udp_frames(dev.info()["mac"], peer_mac, net, 1000, b"burst!"):
            s.send(f)
        # Count in C, through the stats: nothing else is sent on this link.
        got = lib.rusty_dev_bench_rx(dev.ptr, 0, 1000, 5_000_000, ffi.NULL)
        after = dev.stats()
        assert got == 1000
        assert after["rx_frames"] - before["rx_frames"] == 1000
        assert after["rx_dropped"] == 0 and after["rx_errors"] == 0


def test_own_transmissions_not_seen():
    """PACKET_IGNORE_OUTGOING: what we send does not come back to our ring."""
    with link() as (ns, a, b, net), opened(f"afpacket:{a}") as dev:
        frames = list(udp_frames("02:00:00:00:00:01", mac_bytes(dev.info()["mac"]), net, 20, b"mine!"))
        for f in frames:
            dev.send(f)
        assert collect([(dev, 0)], b"mine!", 1, timeout=0.3) == [0]
        assert dev.stats()["tx_frames"] == 20


def test_tx_reaches_peer():
    with link() as (ns, a, b, net), opened(f"afpacket:{a}") as dev, peer_socket(ns, b) as s:
        s.settimeout(2)
        peer_mac = sh("cat", f"/sys/class/net/{b}/address", ns=ns).stdout.strip()
        frames = list(udp_frames(peer_mac, mac_bytes(dev.info()["mac"]), net, 100, b"to-peer!"))
        for f in frames:
            dev.send(f)
        seen = []
        while len(seen) < 100:
            f = s.recv(2048)
            if b"to-peer!" in f:
                seen.append(f)
        assert seen == frames


def test_queues_spread_flows():
    with link() as (ns, a, b, net), opened(f"afpacket:{a},queues=2") as dev, peer_socket(ns, b) as s:
        assert dev.info()["queues"] == 2
        assert dev.fileno(0) >= 0 and dev.fileno(1) >= 0 and dev.fileno(0) != dev.fileno(1)
        peer_mac = mac_bytes(sh("cat", f"/sys/class/net/{b}/address", ns=ns).stdout.strip())
        for f in udp_frames(dev.info()["mac"], peer_mac, net, 200, b"flows!", ports=200):
            s.send(f)
        counts = collect([(dev, 0), (dev, 1)], b"flows!", 200)
        assert sum(counts) == 200 and min(counts) > 0, counts


def test_one_queue_per_worker_splits_the_flows():
    """Two single-queue opens of the same interface split its flows between them."""
    with link() as (ns, a, b, net), opened(f"afpacket:{a},queues=2,queue=0") as w0, \
            opened(f"afpacket:{a},queues=2,queue=1") as w1, peer_socket(ns, b) as s:
        assert w0.info()["queues"] == w1.info()["queues"] == 1
        peer_mac = mac_bytes(sh("cat", f"/sys/class/net/{b}/address", ns=ns).stdout.strip())
        for f in udp_frames(w0.info()["mac"], peer_mac, net, 200, b"workers!", ports=200):
            s.send(f)
        counts = collect([(w0, 0), (w1, 0)], b"workers!", 200)
        assert sum(counts) == 200 and min(counts) > 0, counts


def test_no_such_interface():
    name = unique("rnoif")
    with pytest.raises(OSError) as e:
        _open_driver(Interface.parse(f"afpacket:{name}"), ffi.new("struct rusty_dev_config *"))
    assert e.value.errno == errno.ENODEV
    assert str(e.value) == (f"[Errno {errno.ENODEV}] afpacket device {name}: No such device "
                            "(no such interface; list them with `ip link`)")


def test_offload_off_and_mtu():
    with link() as (ns, a, b, net):
        sh("ip", "link", "set", a, "mtu", "1400")
        with opened(f"afpacket:{a},offload=0") as dev:
            assert dev.info()["offloads"] == 0 and dev.info()["mtu"] == 1400
        with opened(f"afpacket:{a},mtu=1280") as dev:
            assert dev.info()["mtu"] == 1280

