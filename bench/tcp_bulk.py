"""Bulk TCP throughput between the Linux stack and aiorusty over a tap or AF_PACKET (root).

    python bench/tcp_bulk.py [--device tap|afpacket] [--mb 200] [--json results/tcp_bulk.json]

Linux side: a Python socket in a network namespace we create; aiorusty side:
one Stack polled in this process (one core), on a tap whose kernel end is in
the namespace, or on AF_PACKET over the root end of a veth pair whose other end
is in the namespace (TSO/GSO/GRO off on both veth ends: AF_PACKET sees and
sends wire-sized frames). Prints Gbps for Linux -> aiorusty, aiorusty -> Linux
(bytes through the send buffer, and the same from a StaticPayload), and Linux
-> Linux over a veth between two namespaces (with default offloads, and with
the offloads off as on the AF_PACKET veth); never a test assertion. Records
kernel, device and Python.
"""

import argparse
import ipaddress
import json
import os
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiorusty._payload import StaticPayload  # noqa: E402
from aiorusty.nic import open_device  # noqa: E402
from aiorusty.nic._host import configure_host_side  # noqa: E402
from aiorusty.tcp import Stack  # noqa: E402
from _machine import describe, write_json  # noqa: E402

PEER = r"""
import socket, sys, time
mode, ip, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
buf = b"x" * 65536
if mode == "send":
    s = socket.create_connection((ip, port))
    left = n
    while left > 0:
        left -= s.send(buf[:min(left, 65536)])
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
else:
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, port)); ls.listen(1); print("ready", flush=True)
    s, _ = ls.accept()
    got = 0
    while True:
        b = s.recv(262144)
        if not b: break
        got += len(b)
    print(got, flush=True)
"""


def run(stack, until, timeout=120):
    fds = stack.fds()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        stack.poll()
        if until():
            return
        nd = stack.prepare_sleep()
        if nd is None or nd > stack.now_us():
            select.select(fds, [], [], 0.001)
    raise TimeoutError


NO_OFFLOAD = ("tso", "off", "gso", "off", "gro", "off")


def linux_baseline(n, offloads=True):
    """The same Python sender/receiver, Linux to Linux over a veth pair between two
    namespaces: what the kernel does with the same application loop."""
    a, b = f"rbla{os.getpid()}", f"rblb{os.getpid()}"
    va, vb = f"rbva{os.getpid() % 10000}", f"rbvb{os.getpid() % 10000}"
    sh = lambda *c: subprocess.run(c, check=True)  # noqa: E731
    try:
        sh("ip", "netns", "add", a)
        sh("ip", "netns", "add", b)
        sh("ip", "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb, "netns", b)
        sh("ip", "-n", a, "addr", "add", "10.78.0.1/24", "dev", va)
        sh("ip", "-n", b, "addr", "add", "10.78.0.2/24", "dev", vb)
        for ns, dev in ((a, va), (b, vb)):
            if not offloads:
                sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, *NO_OFFLOAD)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        rx = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, "-c", PEER, "recv", "10.78.0.2", "5203", "0"],
                              stdout=subprocess.PIPE, text=True)
        assert rx.stdout.readline().strip() == "ready"
        t0 = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", a, sys.executable, "-c", PEER.replace("s.recv(1)", "s.close()"),
                        "send", "10.78.0.2", "5203", str(n)], check=True)
        rx.wait(60)
        return round(n * 8 / (time.perf_counter() - t0) / 1e9, 3)
    finally:
        subprocess.run(["ip", "netns", "del", a])
        subprocess.run(["ip", "netns", "del", b])


def open_stack(device, ns):
    """(stack, dev, cleanup) with the stack at 10.77.0.2 and Linux at 10.77.0.1 in ns."""
    sh = lambda *c: subprocess.run(c, check=True)  # noqa: E731
    if device == "tap":
        tap = f"rbt{os.getpid() % 100000}"
        dev = open_device(f"tap:{tap}")
        stack = Stack(seed=1)
        stack.add_interface(dev, ip="10.77.0.2/24")
        configure_host_side(dev, host=ipaddress.IPv4Interface("10.77.0.1/24"), netns=ns)
        return stack, dev, lambda: None
    va, vb = f"rbpa{os.getpid() % 10000}", f"rbpb{os.getpid() % 10000}"
    sh("ip", "link", "add", va, "type", "veth", "peer", "name", vb, "netns", ns)
    subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{va}.disable_ipv6=1"])
    sh("ethtool", "-K", va, *NO_OFFLOAD)
    sh("ip", "netns", "exec", ns, "ethtool", "-K", vb, *NO_OFFLOAD)
    sh("ip", "link", "set", va, "up")
    sh("ip", "-n", ns, "addr", "add", "10.77.0.1/24", "dev", vb)
    sh("ip", "-n", ns, "link", "set", vb, "up")
    stack = Stack([f"afpacket:{va},ip=10.77.0.2/24"], seed=1)
    return stack, None, lambda: subprocess.run(["ip", "link", "del", va])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("tap", "afpacket"), default="tap")
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--json")
    args = ap.parse_args()
    n = args.mb << 20
    ns = f"rbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    dev = stack = None
    cleanup = lambda: None  # noqa: E731
    results = describe(device=args.device, bytes=n, loop="none (Stack driven from Python)",
                       pinning="none (aiorusty: this process; Linux peer: its own process)")
    try:
        stack, dev, cleanup = open_stack(args.device, ns)
        # Linux -> aiorusty
        lsock = stack.tcp_listen(None, 5201)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PEER, "send", "10.77.0.2", "5201",
                                 str(n)])
        state = {"s": None, "got": 0, "t0": None}

        def rx_done():
            if state["s"] is None:
                state["s"] = stack.tcp_accept(lsock)
                state["t0"] = time.perf_counter()
                return False
            while True:
                d = stack.tcp_recv(state["s"], 1 << 20)
                if not d:
                    return d == b""
                state["got"] += len(d)

        run(stack, rx_done)
        dt = time.perf_counter() - state["t0"]
        stack.tcp_close(state["s"])
        run(stack, lambda: proc.poll() is not None, 10)
        results["linux_to_rusty_gbps"] = round(state["got"] * 8 / dt / 1e9, 3)
        # aiorusty -> Linux: bytes, then a StaticPayload
        chunk = b"y" * (1 << 20)
        payload = StaticPayload(chunk)
        for key, port in (("rusty_to_linux_gbps", 5202), ("rusty_to_linux_payload_gbps", 5203)):
            proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PEER, "recv", "10.77.0.1",
                                     str(port), "0"], stdout=subprocess.PIPE, text=True)
            assert proc.stdout.readline().strip() == "ready"
            s = stack.tcp_connect(("10.77.0.1", port))
            sent = [0, False]
            use_payload = key.endswith("payload_gbps")

            def tx_done():
                if stack.tcp_info(s)["state"] == "SYN-SENT":
                    return False
                while sent[0] < n:
                    k = min(len(chunk), n - sent[0])
                    off = sent[0] % len(chunk)
                    k = min(k, len(chunk) - off)
                    if use_payload:
                        k = stack.tcp_send_payload(s, payload, off, k)
                    else:
                        k = stack.tcp_send(s, chunk[:k])
                    if not k:
                        break
                    sent[0] += k
                if sent[0] == n and not sent[1]:
                    stack.tcp_shutdown(s)
                    sent[1] = True
                return sent[1] and stack.tcp_info(s)["snd_una"] == stack.tcp_info(s)["snd_nxt"]

            t0 = time.perf_counter()
            run(stack, tx_done)
            dt = time.perf_counter() - t0
            results[key] = round(n * 8 / dt / 1e9, 3)
            stack.tcp_close(s)
            run(stack, lambda: proc.poll() is not None, 10)
            got = int(proc.stdout.read().split()[-1])
            assert got == n, (key, got, n)
    finally:
        if stack:
            stack.close()
        if dev:
            dev.close()
        cleanup()
        subprocess.run(["ip", "netns", "del", ns])
    results["linux_to_linux_veth_gbps"] = linux_baseline(n)
    results["linux_to_linux_veth_no_offload_gbps"] = linux_baseline(n, offloads=False)
    print(json.dumps(results, indent=2))
    write_json(args.json, results)


if __name__ == "__main__":
    main()
