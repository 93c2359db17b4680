"""Multi-queue tap steering against the real kernel (root).

A tap opened with queues=N > 1 carries our eBPF steering program (tap_steer.c), so
every frame the kernel sends of flow (s, d, sp, dp) reaches queue
steer.flow_queue(s, d, sp, dp, N) - the hash shm and AF_PACKET use - and ARP reaches
queue 0. Queue K attaches only once K are attached (the kernel numbers queues by
attach order). End to end, `serve -w 2` and `load -w 2` over a 2-queue tap: each
server worker accepts exactly the connections the hash gives it, and both generator
workers reach the kernel (no ARP reply ever reaches worker 1: it sends to the kernel's
MAC unasked) with source ports whose replies come back to them.
"""

import collections
import contextlib
import errno
import ipaddress
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time

import pytest
from _netns import netns, need_tool, needs_root, sh, unique
from test_tap import opened, parse_arp, subnet
from testbed.test_steer_afpacket import load_in, server_in

from aiorusty._rusty import ffi, lib
from aiorusty.nic import Interface
from aiorusty.nic._device import _open_driver
from aiorusty.nic._host import configure_host_side
from aiorusty.testbed.http import generated_body
from aiorusty.testbed.steer import flow_queue

pytestmark = [needs_root, pytest.mark.timeout(120)]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def kernel_side(devs, name):
    """(ns, net): the kernel end of tap `name` in a namespace of ours with net.1/24, told
    our MAC for net.2 (so it sends without asking). devs: the devices holding its queues."""
    net = subnet()
    with netns() as ns:
        configure_host_side(devs[0], host=ipaddress.IPv4Interface(f"{net}.1/24"), netns=ns)
        sh("ip", "neigh", "replace", f"{net}.2", "lladdr", devs[0].info()["mac"], "dev", name, ns=ns)
        yield ns, net


def flow_of(frame):
    """(src, dst, sport, dport) of an IPv4 TCP/UDP frame, else None."""
    if len(frame) < 38 or frame[12:14] != b"\x08\x00" or frame[23] not in (6, 17):
        return None
    ihl = (frame[14] & 0x0F) * 4
    sport, dport = struct.unpack("!HH", frame[14 + ihl:18 + ihl])
    return str(ipaddress.IPv4Address(frame[26:30])), str(ipaddress.IPv4Address(frame[30:34])), sport, dport


def collect(queues, until, timeout=8.0):
    """Read every queue ([(device, local queue)] by global queue) until until(frames) holds;
    frames is {global queue: [frame, ...]}."""
    frames = {q: [] for q in range(len(queues))}
    fds = [dev.fileno(lq) for dev, lq in queues]
    deadline = time.monotonic() + timeout
    while not until(frames) and time.monotonic() < deadline:
        for q, (dev, lq) in enumerate(queues):
            while (f := dev.recv(lq)) is not None:
                frames[q].append(f)
        select.select(fds, [], [], 0.01)
    return frames


def kernel_sends(ns, net, udp_flows, tcp_flows):
    """From the kernel side: one UDP datagram per flow, and a TCP SYN per flow (connect() that
    we never answer), each from its own source port, to net.2. The flows as (sport, dport)."""
    udp = [(30000 + 7 * i, 9000 + i % 5) for i in range(udp_flows)]
    tcp = [(40000 + 3 * i, 80 + i % 3) for i in range(tcp_flows)]
    script = ("import socket, time\n"
              f"for sp, dp in {udp!r}:\n"
              "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
              f"    s.bind(('{net}.1', sp)); s.sendto(b'q', ('{net}.2', dp)); s.close()\n"
              "keep = []\n"
              f"for sp, dp in {tcp!r}:\n"
              "    s = socket.socket(); s.setblocking(False)\n"
              f"    s.bind(('{net}.1', sp)); s.connect_ex(('{net}.2', dp)); keep.append(s)\n"
              "time.sleep(0.5)\n")
    sh(sys.executable, "-c", script, ns=ns)
    return udp, tcp


def assert_steered(frames, net, n, flows):
    """Every TCP/UDP frame from the kernel sits on its hash's queue; all `flows` arrived."""
    seen = set()
    for q, fs in frames.items():
        for f in fs:
            flow = flow_of(f)
            if flow and flow[0] == f"{net}.1":
                assert flow_queue(*flow, n) == q, (flow, q)
                seen.add(flow[2:])
    assert seen == set(flows)
    return seen


def flows_arrived(net, count):
    return lambda frames: len({flow_of(f) for fs in frames.values() for f in fs} - {None}) >= count


def test_program_loads_for_every_queue_count():
    log = ffi.new("char[]", 4096)
    for n in range(1, 17):
        fd = lib.rusty_tap_steer_load(n, log, 4096)
        assert fd >= 0, (n, os.strerror(-fd), ffi.string(log))
        os.close(fd)
    assert lib.rusty_tap_steer_load(0, log, 4096) == -errno.EINVAL
    assert lib.rusty_tap_steer_load(17, log, 4096) == -errno.EINVAL


@pytest.mark.parametrize("n", [2, 4])
def test_every_flow_reaches_the_queue_of_its_hash(n):
    name = unique("rtst")
    with opened(f"tap:{name},queues={n}") as dev, kernel_side([dev], name) as (ns, net):
        udp, tcp = kernel_sends(ns, net, 96, 48)
        frames = collect([(dev, q) for q in range(n)], flows_arrived(net, len(udp) + len(tcp)))
    assert_steered(frames, net, n, udp + tcp)
    per_queue = [len({flow_of(f) for f in frames[q]} - {None}) for q in range(n)]
    assert min(per_queue) > 0, per_queue        # (1 - 1/n)^144 chance otherwise


def test_arp_reaches_queue_0_only():
    name = unique("rtst")
    with opened(f"tap:{name},queues=4") as dev, kernel_side([dev], name) as (ns, net):
        # The kernel resolves 8 neighbours nobody answers for: broadcast who-has frames.
        targets = {f"{net}.{i}" for i in range(3, 11)}
        script = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                  f"for t in {sorted(targets)!r}:\n    s.sendto(b'x', (t, 9))\n")
        sh(sys.executable, "-c", script, ns=ns)

        def asked(frames):
            return {a[3] for f in frames[0] if (a := parse_arp(f)) and a[0] == 1} >= targets
        frames = collect([(dev, q) for q in range(4)], asked)
    assert asked(frames)
    assert not [f for q in (1, 2, 3) for f in frames[q] if parse_arp(f)], "ARP off queue 0"


def test_workers_attach_in_order_whoever_starts_first():
    """Worker 1 opening first waits for worker 0 (else it would take the kernel's queue 0
    and the two workers would get each other's flows)."""
    name = unique("rtst")
    got, done = {}, threading.Event()

    def worker1():
        try:
            got["dev"] = _open_queue(name, 1)
        except BaseException as e:  # noqa: BLE001 - reported below
            got["error"] = e
        done.set()
    t = threading.Thread(target=worker1)
    t.start()
    try:
        assert not done.wait(0.5), got         # waiting for queue 0, not attached as the first queue
        w0 = _open_queue(name, 0)
        assert done.wait(10), "worker 1 still waiting after worker 0 attached"
        t.join()
        assert "error" not in got, got
        w1 = got["dev"]
        with w0, w1, kernel_side([w0, w1], name) as (ns, net):
            udp, tcp = kernel_sends(ns, net, 48, 16)
            frames = collect([(w0, 0), (w1, 0)], flows_arrived(net, len(udp) + len(tcp)))
        assert_steered(frames, net, 2, udp + tcp)
    finally:
        done.wait(15)
        t.join()
        if "dev" in got:
            got["dev"].close()


def _open_queue(name, k):
    from aiorusty.nic import open_device
    return open_device(f"tap:{name},queues=2,queue={k}")


def test_queue_already_attached_is_a_clear_error():
    name = unique("rtst")
    with opened(f"tap:{name},queues=2,queue=0"):
        with pytest.raises(OSError) as e:
            _open_queue(name, 0)
        assert e.value.errno == errno.EBUSY
        assert f"tap device {name}: Device or resource busy (queue 0 of 2 attaches when exactly 0" in str(e.value)
        assert "restart every worker" in str(e.value)
        # All queues from one process need a tap with none attached, too.
        with pytest.raises(OSError) as e:
            opened(f"tap:{name},queues=2").__enter__()
        assert e.value.errno == errno.EBUSY


def test_queue_index_out_of_range_is_refused():
    cfg = ffi.new("struct rusty_dev_config *")
    cfg.queues, cfg.queue = 2, 2
    cfg.flags = lib.RUSTY_DEVF_CREATE | lib.RUSTY_DEVF_SINGLE_QUEUE
    name = unique("rtst")
    with pytest.raises(OSError) as e:
        _open_driver(Interface("tap", name, queues=2, queue=2), cfg)
    assert e.value.errno == errno.EINVAL
    assert sh("ip", "link", "show", name, check=False).returncode != 0


def test_steering_program_refused_says_why():
    """Without CAP_BPF (and CAP_SYS_ADMIN) the kernel refuses the program (unprivileged BPF is
    off here): the open fails, naming the eBPF program and the way out."""
    need_tool("setpriv")
    if open("/proc/sys/kernel/unprivileged_bpf_disabled").read().strip() == "0":
        pytest.skip("unprivileged BPF is allowed here: dropping CAP_BPF does not make the load fail")
    name = unique("rtst")
    script = (f"import sys\nsys.path.insert(0, {ROOT!r})\n"
              "from aiorusty.nic import open_device\n"
              "try:\n"
              f"    open_device('tap:{name},queues=2')\n"
              "except OSError as e:\n"
              "    print(type(e).__name__, e)\n")
    drop = "-bpf,-sys_admin,-perfmon"
    r = subprocess.run(["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", "--", sys.executable, "-c", script],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"PermissionError [Errno {errno.EPERM}] tap device {name}: Operation not permitted "
                               "(the eBPF program that steers the flows of a multi-queue tap did not load"), r.stdout
    assert "needs root or CAP_BPF, or open the tap with queues=1" in r.stdout
    assert sh("ip", "link", "show", name, check=False).returncode != 0


# ------------------------------------------------------------ end to end: the CLI on a tap

CLIENT = """
import http.client, json, sys
net, ports, out = sys.argv[1], json.loads(sys.argv[2]), {}
for p in ports:
    c = http.client.HTTPConnection(net + ".2", 8080, timeout=5, source_address=(net + ".1", p))
    c.request("GET", "/64")
    r = c.getresponse()
    out[p] = [r.status, r.read().hex()]
    c.close()
print(json.dumps(out))
"""


def test_serve_two_workers_each_gets_the_flows_of_its_hash(tmp_path):
    """`serve -w 2` on a 2-queue tap, a kernel client from chosen source ports: each worker
    accepts exactly the connections steer.flow_queue gives it, and answers them (worker 1
    replies without ever hearing an ARP reply)."""
    name, net = unique("rtst"), subnet()
    stats = tmp_path / "server.json"
    ports = [41000 + 13 * i for i in range(24)]
    with netns() as ns:
        with server_in(ns, "--iface", f"tap:{name},ip={net}.2/24,host={net}.1/24", "--stats-json", str(stats),
                       workers=2):
            r = sh(sys.executable, "-c", CLIENT, net, json.dumps(ports), ns=ns, timeout=60)
    got = json.loads(r.stdout)
    assert {int(p): v for p, v in got.items()} == {p: [200, generated_body(64).hex()] for p in ports}
    want = collections.Counter(flow_queue(f"{net}.1", f"{net}.2", p, 8080, 2) for p in ports)
    s = json.loads(stats.read_text())
    per = {w["worker"]: (w["connections"], w["requests"]) for w in s["workers"]}
    assert per == {0: (want[0], want[0]), 1: (want[1], want[1])}
    assert min(want.values()) > 0               # both workers had flows (2^-23 chance otherwise)


def test_load_two_workers_over_a_tap(tmp_path):
    """`load -w 2` on a 2-queue tap to a kernel server behind it: every connection of both
    workers completes (worker 1 reaches the kernel with no ARP reply of its own, and its source
    ports bring the replies back to it); with --no-steer about half the replies reach the
    other worker: errors."""
    name, net = unique("rtst"), subnet()
    iface = f"tap:{name},ip={net}.2/24,host={net}.1/24"
    with netns() as ns, server_in(ns, "--kernel", "--host", "0.0.0.0"):
        url = f"http://{net}.1:8080/1k"
        r = load_in(ns, url, iface, tmp_path)
        bad = load_in(ns, url, iface, tmp_path, "--no-steer", "--timeout", "1")
    assert r["errors"] == {} and r["connections"] == 16, r["errors"]
    assert [w["connections"] for w in r["workers"]] == [8, 8]
    assert all(w["requests"] > 0 for w in r["workers"]), r["workers"]
    assert r.get("unanswered", 0) == 0
    assert bad["errors"] and bad["connections"] < 16, bad

