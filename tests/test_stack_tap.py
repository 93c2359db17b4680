"""The stack on a tap whose kernel side lives in a namespace the test creates:
Linux ping, arping and UDP sockets talk to it (real peers, root only)."""

import ipaddress
import os
import re

import pytest

from aiorusty.nic import open_device
from aiorusty.nic._host import configure_host_side
from aiorusty.tcp import Stack
from aiorusty.tcp._stack import close_device

from _netns import need_tool, needs_root, netns, unique
from _stack_peer import popen_ns, serve, skip_if_enosys, udp_both_ways

pytestmark = [needs_root, pytest.mark.timeout(90)]

NET = 200 + os.getpid() % 50            # 10.NET.7.0/24: a subnet of our own per run
STACK_IP = f"10.{NET}.7.2"
HOST_IP = f"10.{NET}.7.1"


@pytest.fixture
def tap_stack():
    name = unique("rstap")
    with netns() as ns:
        try:
            dev = open_device(f"tap:{name}")
        except OSError as e:
            skip_if_enosys(e, "tap")
        stack = Stack(seed=11)
        try:
            stack.add_interface(dev, ip=f"{STACK_IP}/24")
            configure_host_side(dev, host=ipaddress.IPv4Interface(f"{HOST_IP}/24"), netns=ns)
            yield stack, ns, name
        finally:
            stack.close()
            close_device(dev)       # deletes the (non-persistent) tap, wherever its kernel end is


def test_kernel_pings_stack(tap_stack):
    stack, ns, _ = tap_stack
    need_tool("ping")
    proc = popen_ns(ns, "ping", "-c", 5, "-i", 0.2, "-W", 2, STACK_IP)
    out, err = serve(stack, proc, timeout=20)
    assert proc.returncode == 0, out + err
    assert re.search(r"5 packets transmitted, 5 received", out), out
    st = stack.stats()
    assert st["icmp_echo_requests"] >= 5 and st["ip_bad_checksum"] == 0


def test_arping_answered(tap_stack):
    stack, ns, name = tap_stack
    need_tool("arping")
    proc = popen_ns(ns, "arping", "-c", 3, "-w", 10, "-I", name, STACK_IP)
    out, err = serve(stack, proc, timeout=20)
    assert proc.returncode == 0, out + err
    assert re.search(r"Received 3 response|3 packets received", out), out  # iputils or Habets arping
    mac = stack.devices[0].info()["mac"]
    assert mac.upper() in out.upper()


def test_udp_echo_both_ways(tap_stack):
    stack, ns, _ = tap_stack
    udp_both_ways(stack, ns, STACK_IP, HOST_IP)


def test_stack_pings_kernel(tap_stack):
    stack, ns, _ = tap_stack
    from aiorusty._rusty import lib

    replies = []
    for seq in range(3):
        stack.ping(HOST_IP, 4242, seq)
        serve(stack, None, timeout=5, on_event=replies.append,
              until=lambda: any(e[1] == lib.RUSTY_EV_ICMP_ECHO_REPLY and e[3] == seq for e in replies))
    got = sorted(e[3] for e in replies if e[1] == lib.RUSTY_EV_ICMP_ECHO_REPLY and e[0] == 4242)
    assert got == [0, 1, 2]
