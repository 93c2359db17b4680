"""The tap driver against the Linux stack on the kernel side of the tap.

The stack's side stays in the root namespace; the kernel side is moved into a
namespace the test creates (the tap fd stays valid across the move), so the
addresses live only there. Frames are built by hand here, so these tests do
not depend on the user-space stack. The frame helpers are shared with
test_afpacket.py.
"""

import contextlib
import errno
import ipaddress
import os
import select
import struct
import subprocess
import sys
import time

import pytest

from _netns import IS_ROOT, netns, need_tool, needs_root, sh, unique
from aiorusty._rusty import ffi, lib
from aiorusty.nic import Interface, open_device
from aiorusty.nic._device import Device, _open_driver
from aiorusty.nic._host import configure_host_side

pytestmark = [needs_root, pytest.mark.timeout(60)]

BROADCAST = b"\xff" * 6


# ------------------------------------------------------------ frame helpers

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac_bytes(mac):
    return bytes.fromhex(mac.replace(":", ""))


def ip_bytes(ip):
    return ipaddress.IPv4Address(ip).packed


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, ip_bytes(spa), tha, ip_bytes(tpa))


def parse_arp(frame):
    """(op, sender mac, sender ip, target ip) of an Ethernet ARP frame, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack("!HHBBH6s4s6s4s", frame[14:42])
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        return None
    return op, sha, str(ipaddress.IPv4Address(spa)), str(ipaddress.IPv4Address(tpa))


def ipv4(src, dst, proto, payload, ident=0x1234):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0,
                      ip_bytes(src), ip_bytes(dst))
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload


def icmp_echo(ident, seq, payload, reply=False):
    body = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, seq) + payload
    return body[:2] + struct.pack("!H", csum(body)) + body[4:]


def udp(src, dst, sport, dport, payload):
    length = 8 + len(payload)
    pseudo = ip_bytes(src) + ip_bytes(dst) + struct.pack("!BBH", 0, 17, length)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    c = csum(pseudo + hdr + payload) or 0xFFFF
    return hdr[:6] + struct.pack("!H", c) + payload


def parse_icmp_echo(frame):
    """(ip src, ip dst, type, ident, seq, payload) of an ICMP echo frame, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 1:
        return None
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack("!H", frame[16:18])[0]
    ip = frame[14:14 + total]
    icmp = ip[ihl:]
    if csum(ip[:ihl]) != 0 or csum(icmp) != 0:
        raise AssertionError(f"bad checksum in {frame.hex()}")
    typ, _code, _c, ident, seq = struct.unpack("!BBHHH", icmp[:8])
    return (str(ipaddress.IPv4Address(ip[12:16])), str(ipaddress.IPv4Address(ip[16:20])), typ, ident, seq,
            bytes(icmp[8:]))


def wait_frames(dev, match, timeout=5.0, queue=0, answer_arp=None):
    """Receive until match(frame) returns something truthy; return that.

    answer_arp=(our_mac, our_ip): reply to the kernel's who-has for our_ip
    meanwhile, as a host would.
    """
    deadline = time.monotonic() + timeout
    fd = dev.fileno(queue)
    while time.monotonic() < deadline:
        frame = dev.recv(queue)
        if frame is None:
            select.select([fd], [], [], 0.01)
            continue
        if answer_arp is not None:
            a = parse_arp(frame)
            if a and a[0] == 1 and a[3] == answer_arp[1]:
                mac = mac_bytes(answer_arp[0])
                dev.send(eth(a[1], mac, 0x0806, arp(2, mac, answer_arp[1], a[1], a[2])), queue)
        got = match(frame)
        if got:
            return got
    raise AssertionError(f"no matching frame within {timeout} s (stats {dev.stats()})")




@contextlib.contextmanager
def opened(spec):
    dev = open_device(spec)
    try:
        yield dev
    finally:
        dev.close()


def subnet():
    """A /24 in 10.x unique to this process (only ever configured inside our namespaces)."""
    pid = os.getpid()
    subnet.n = getattr(subnet, "n", 0) + 1
    return f"10.{100 + pid % 100}.{(pid // 100 + subnet.n) % 250}"


def kernel_mac(name, ns=None):
    out = sh("ip", "-o", "link", "show", name, ns=ns).stdout
    return out.split("link/ether ")[1].split()[0]


def ping_exchange(dev, ns, ifname, net, queue=0):
    """The kernel pings us (we see its ARP who-has), then we ping it and check its echo reply."""
    info = dev.info()
    ours, theirs = f"{net}.2", f"{net}.1"
    kmac = kernel_mac(ifname, ns)
    assert info["mac"] != kmac
    ping = subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "1", ours],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        who_has = wait_frames(dev, lambda f: (a := parse_arp(f)) and a[0] == 1 and a[3] == ours and (f, a),
                              queue=queue)
        frame, (op, sha, spa, tpa) = who_has
        assert frame[:6] == BROADCAST and sha == mac_bytes(kmac) and spa == theirs
        # Answer it; the kernel's pending echo requests then come to our MAC.
        mac = mac_bytes(info["mac"])
        dev.send(eth(sha, mac, 0x0806, arp(2, mac, ours, sha, theirs)), queue)
        req = wait_frames(dev, lambda f: (e := parse_icmp_echo(f)) and e[2] == 8 and (f, e), queue=queue)
        assert req[0][:6] == mac and req[1][:2] == (theirs, ours)
        # Our echo request, their reply: same identifier, sequence and payload.
        payload = bytes(range(48))
        dev.send(eth(mac_bytes(kmac), mac, 0x0800, ipv4(ours, theirs, 1, icmp_echo(0xBEEF, 7, payload))), queue)
        reply = wait_frames(dev, lambda f: (e := parse_icmp_echo(f)) and e[2] == 0 and e[3] == 0xBEEF and e,
                            queue=queue, answer_arp=(info["mac"], ours))
        assert reply == (theirs, ours, 0, 0xBEEF, 7, payload)
    finally:
        ping.wait(timeout=10)


# -------------------------------------------------------------------- tests

def test_arp_and_icmp_with_kernel_in_netns():
    need_tool("ping")
    name, net = unique("rtap"), subnet()
    with netns() as ns, opened(f"tap:{name}") as dev:
        info = dev.info()
        assert info["name"] == name and info["driver"] == "tap" and info["mtu"] == 1500
        # Checksums both ways, and on tx scatter-gather and TSO (virtio-net header).
        assert info["offloads"] == (lib.RUSTY_OFF_RX_CSUM | lib.RUSTY_OFF_TX_CSUM | lib.RUSTY_OFF_TX_SG
                                    | lib.RUSTY_OFF_TSO)
        configure_host_side(dev, host=ipaddress.IPv4Interface(f"{net}.1/24"), netns=ns)
        ping_exchange(dev, ns, name, net)
        st = dev.stats()
        assert st["rx_frames"] >= 3 and st["tx_frames"] >= 2 and st["rx_errors"] == 0 and st["tx_errors"] == 0
    assert sh("ip", "link", "show", name, check=False).returncode != 0


def test_host_key_configures_kernel_side_in_root_namespace():
    """host= brings the kernel side up in our namespace: it then ARPs for the stack's address."""
    need_tool("ping")
    name, net = unique("rtap"), subnet()
    with opened(f"tap:{name},host={net}.1/24") as dev:
        out = sh("ip", "-o", "-4", "addr", "show", "dev", name).stdout
        assert f"{net}.1/24" in out
        sh("ping", "-c", "1", "-W", "0.5", f"{net}.2", check=False)
        frame, a = wait_frames(dev, lambda f: (a := parse_arp(f)) and a[0] == 1 and (f, a))
        assert a[2:] == (f"{net}.1", f"{net}.2")
    assert sh("ip", "link", "show", name, check=False).returncode != 0


def test_offload_off():
    name = unique("rtap")
    with opened(f"tap:{name},offload=0") as dev:
        assert dev.info()["offloads"] == 0


def test_no_offload_exchange():
    """Without the virtio-net header frames still flow (checksums done in software)."""
    need_tool("ping")
    name, net = unique("rtap"), subnet()
    with netns() as ns, opened(f"tap:{name},offload=0") as dev:
        configure_host_side(dev, host=ipaddress.IPv4Interface(f"{net}.1/24"), netns=ns)
        ping_exchange(dev, ns, name, net)


def test_multi_queue():
    need_tool("ping")
    name, net = unique("rtap"), subnet()
    with netns() as ns, opened(f"tap:{name},queues=2") as dev:
        info = dev.info()
        assert info["queues"] == 2
        fds = [dev.fileno(0), dev.fileno(1)]
        assert min(fds) >= 0 and fds[0] != fds[1]
        assert dev.fileno(2) == -1
        assert "multi_queue" in sh("ip", "-d", "link", "show", name).stdout
        configure_host_side(dev, host=ipaddress.IPv4Interface(f"{net}.1/24"), netns=ns)
        # Our steering program picks a queue per flow (test_tap_steer.py checks which); many UDP flows reach both.
        mac, kmac = mac_bytes(info["mac"]), mac_bytes(kernel_mac(name, ns))
        sh("ip", "neigh", "replace", f"{net}.2", "lladdr", info["mac"], "dev", name, ns=ns)
        script = ("import socket\n"
                  "for p in range(64):\n"
                  "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                  f"    s.sendto(b'q', ('{net}.2', 9000 + p)); s.close()\n")
        sh(sys.executable, "-c", script, ns=ns)
        got = [0, 0]
        deadline = time.monotonic() + 5
        while sum(got) < 64 and time.monotonic() < deadline:
            for q in (0, 1):
                f = dev.recv(q)
                if f is not None and f[12:14] == b"\x08\x00" and f[23] == 17:
                    got[q] += 1
            select.select(fds, [], [], 0.01)
        assert sum(got) == 64 and min(got) > 0, got
        # Each queue transmits too; the replies come back on whichever queue their flow hashes to.
        for q in (0, 1):
            dev.send(eth(kmac, mac, 0x0800, ipv4(f"{net}.2", f"{net}.1", 1, icmp_echo(0x51, q, b"x" * 8))), q)
        seqs = set()
        deadline = time.monotonic() + 5
        while len(seqs) < 2 and time.monotonic() < deadline:
            for q in (0, 1):
                f = dev.recv(q)
                e = f is not None and parse_icmp_echo(f)
                if e and e[2] == 0 and e[3] == 0x51:
                    seqs.add(e[4])
            select.select(fds, [], [], 0.01)
        assert seqs == {0, 1}


def test_burst_of_1000_from_the_kernel_all_received():
    name, net = unique("rtap"), subnet()
    with netns() as ns, opened(f"tap:{name}") as dev:
        configure_host_side(dev, host=ipaddress.IPv4Interface(f"{net}.1/24"), netns=ns)
        sh("ip", "neigh", "replace", f"{net}.2", "lladdr", dev.info()["mac"], "dev", name, ns=ns)
        before = dev.stats()
        script = ("import socket\n"
                  "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                  "for i in range(1000):\n"
                  f"    s.sendto(i.to_bytes(4, 'big') * 64, ('{net}.2', 9))\n")
        sender = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script])
        try:
            # The C receive loop runs without the GIL while the kernel sends.
            got = lib.rusty_dev_bench_rx(dev.ptr, 0, 1000, 5_000_000, ffi.NULL)
        finally:
            assert sender.wait(timeout=30) == 0
        after = dev.stats()
        assert got == 1000
        assert after["rx_frames"] - before["rx_frames"] == 1000
        assert after["rx_bytes"] - before["rx_bytes"] == 1000 * (14 + 20 + 8 + 256)
        assert after["rx_errors"] == 0 and after["rx_dropped"] == 0


def test_one_queue_per_worker():
    """Workers each open one queue of a multi-queue tap (queue=N): both attach to the same tap."""
    name = unique("rtap")
    with opened(f"tap:{name},queues=2,queue=0") as w0, opened(f"tap:{name},queues=2,queue=1") as w1:
        assert w0.info()["queues"] == 1 and w1.info()["queues"] == 1
        assert w0.fileno() >= 0 and w1.fileno() >= 0 and w0.fileno() != w1.fileno()
        assert w0.info()["name"] == w1.info()["name"] == name


def test_attach_to_existing_persistent_tap():
    name = unique("rtap")
    sh("ip", "tuntap", "add", "dev", name, "mode", "tap")
    try:
        cfg = ffi.new("struct rusty_dev_config *")  # no RUSTY_DEVF_CREATE: attach only
        dev = Device(_open_driver(Interface.parse(f"tap:{name}"), cfg), Interface("tap", name))
        try:
            assert dev.info()["name"] == name
        finally:
            dev.close()
        # Still there: it is persistent, we only attached.
        assert sh("ip", "link", "show", name, check=False).returncode == 0
    finally:
        sh("ip", "tuntap", "del", "dev", name, "mode", "tap", check=False)


def test_missing_tap_without_create_is_a_clear_error():
    name = unique("rnone")
    cfg = ffi.new("struct rusty_dev_config *")
    with pytest.raises(OSError) as e:
        _open_driver(Interface.parse(f"tap:{name}"), cfg)
    assert e.value.errno == errno.ENODEV
    assert str(e.value).startswith(f"[Errno {errno.ENODEV}] tap device {name}: No such device")
    assert f"ip tuntap add {name} mode tap user $USER" in str(e.value)
    assert sh("ip", "link", "show", name, check=False).returncode != 0


@pytest.mark.skipif(not IS_ROOT, reason="drops a capability it must first have")
def test_without_cap_net_admin_the_message_says_what_to_do():
    """Creating a tap without CAP_NET_ADMIN: the kernel says EPERM, the message says how to fix it."""
    need_tool("setpriv")
    name = unique("rnocap")
    script = ("import sys\n"
              f"sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})\n"
              "from aiorusty.nic import open_device\n"
              "try:\n"
              f"    open_device('tap:{name}')\n"
              "except PermissionError as e:\n"
              "    print(e)\n")
    r = subprocess.run(["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", "--",
                        sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    msg = r.stdout.strip()
    assert msg == (f"[Errno {errno.EPERM}] tap device {name}: Operation not permitted (run as root or create it "
                   f"with `ip tuntap add {name} mode tap user $USER`)")


def test_bad_name():
    with pytest.raises(OSError) as e:
        _open_driver(Interface("tap", "x" * 20), ffi.new("struct rusty_dev_config *"))
    assert e.value.errno == errno.EINVAL


@needs_root
def test_missing_dev_net_tun_is_a_permission_error_with_the_fix():
    """Hide /dev/net/tun in a private mount namespace; opening a tap must say how to fix it."""
    need_tool("unshare")
    code = (
        "from aiorusty.nic import open_device\n"
        "try:\n"
        "    open_device('tap:rnotun0')\n"
        "except PermissionError as e:\n"
        "    print('PermissionError', e)\n"
    )
    r = sh("unshare", "-m", "sh", "-c",
           f"mount -t tmpfs none /dev/net && {sys.executable} -c \"{code}\"",
           cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.stdout.startswith("PermissionError"), r.stdout + r.stderr
    assert "/dev/net/tun is missing" in r.stdout and "mknod /dev/net/tun c 10 200" in r.stdout
