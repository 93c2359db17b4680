"""The stack on AF_PACKET over a veth pair whose other end lives in a namespace
the test creates: UDP echo with kernel sockets, and Linux ping (root only)."""

import os
import re

import pytest

from aiorusty.tcp import Stack

from _netns import needs_root, netns, sh, unique, veth_pair
from _stack_peer import popen_ns, serve, skip_if_enosys, udp_both_ways

pytestmark = [needs_root, pytest.mark.timeout(90)]

NET = 150 + os.getpid() % 50            # 10.NET.8.0/24: a subnet of our own per run
STACK_IP = f"10.{NET}.8.2"
PEER_IP = f"10.{NET}.8.1"


@pytest.fixture
def afp_stack():
    a, b = unique("rsva"), unique("rsvb")
    with netns() as ns, veth_pair(a, b, ns_b=ns):
        # The root end carries no address: the stack owns it through AF_PACKET.
        # No IPv6 chatter, no forwarding of frames addressed to the stack's MAC.
        sh("sysctl", "-qw", f"net.ipv6.conf.{a}.disable_ipv6=1", check=False)
        sh("sysctl", "-qw", f"net.ipv4.conf.{a}.forwarding=0", check=False)
        sh("sysctl", "-qw", f"net.ipv6.conf.{b}.disable_ipv6=1", check=False, ns=ns)
        sh("ip", "link", "set", a, "up")
        sh("ip", "addr", "add", f"{PEER_IP}/24", "dev", b, ns=ns)
        sh("ip", "link", "set", b, "up", ns=ns)
        try:
            stack = Stack([f"afpacket:{a},ip={STACK_IP}/24"], seed=5)
        except OSError as e:
            skip_if_enosys(e, "afpacket")
        try:
            yield stack, ns
        finally:
            stack.close()


def test_udp_echo_both_ways(afp_stack):
    stack, ns = afp_stack
    udp_both_ways(stack, ns, STACK_IP, PEER_IP)
    assert stack.stats()["udp_bad_checksum"] == 0


def test_kernel_pings_stack(afp_stack):
    stack, ns = afp_stack
    proc = popen_ns(ns, "ping", "-c", 3, "-i", 0.2, "-W", 2, STACK_IP)
    out, err = serve(stack, proc, timeout=20)
    assert proc.returncode == 0, out + err
    assert re.search(r"3 packets transmitted, 3 received", out), out
