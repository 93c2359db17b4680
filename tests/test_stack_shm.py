"""Two processes, two stacks, one shm:NAME link: they ping each other and
exchange UDP (no root, no kernel in the path)."""

import os
import subprocess
import sys
import time

import pytest

from aiorusty._rusty import lib
from aiorusty.tcp import Stack

from _netns import unique
from _stack_peer import serve, skip_if_enosys, wait_line

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The other process: a stack on the same link that answers pings (the C core
# does that), echoes UDP on port 7, pings us back, and reports the replies.
PEER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from aiorusty._rusty import lib
from aiorusty.tcp import Stack
s = Stack([f"shm:{sys.argv[2]},ip=10.9.0.1/24"], seed=2)
sock = s.udp_bind(None, 7)
print("ready", flush=True)
replies = set()
pinged = 0
done = False
deadline = time.monotonic() + 20
while time.monotonic() < deadline and not (done and len(replies) == 3):
    for ev in s.poll():
        if ev[1] == lib.RUSTY_EV_UDP_READABLE:
            while (d := s.udp_recvfrom(sock)) is not None:
                s.udp_sendto(sock, d[0], d[1])
                done = done or d[0] == b"done"
        elif ev[1] == lib.RUSTY_EV_ICMP_ECHO_REPLY and ev[0] == 99:
            replies.add(ev[3])
    if pinged < 3 and len(replies) == pinged:
        s.ping("10.9.0.2", 99, pinged)
        pinged += 1
    time.sleep(0.001)
for _ in range(20):
    s.poll()
    time.sleep(0.001)
print("replies", sorted(replies), flush=True)
s.close()
"""


def test_two_processes_ping_and_udp():
    name = unique("rsshm")
    try:
        stack = Stack([f"shm:{name},ip=10.9.0.2/24"], seed=1)
    except OSError as e:
        skip_if_enosys(e, "shm")
    proc = subprocess.Popen([sys.executable, "-c", PEER, ROOT, name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_line(stack, proc)
        # our pings to the peer
        replies = []
        for seq in range(3):
            stack.ping("10.9.0.1", 7, seq)
            serve(stack, None, timeout=5, on_event=replies.append,
                  until=lambda: any(e[1] == lib.RUSTY_EV_ICMP_ECHO_REPLY and e[3] == seq for e in replies))
        assert sorted(e[3] for e in replies if e[1] == lib.RUSTY_EV_ICMP_ECHO_REPLY) == [0, 1, 2]
        # UDP echo through the peer
        sock = stack.udp_bind(None, 0)
        got = []

        def on_event(ev):
            if ev[0] == sock and ev[1] == lib.RUSTY_EV_UDP_READABLE:
                while (d := stack.udp_recvfrom(sock)) is not None:
                    got.append(d)

        stack.udp_sendto(sock, b"over shared memory", ("10.9.0.1", 7))
        serve(stack, None, timeout=5, on_event=on_event, until=lambda: bool(got))
        assert got == [(b"over shared memory", ("10.9.0.1", 7))]
        # the peer pinged us meanwhile; tell it to finish
        stack.udp_sendto(sock, b"done", ("10.9.0.1", 7))
        out, err = serve(stack, proc, timeout=20)
        assert proc.returncode == 0, err
        assert "replies [0, 1, 2]" in out, out + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stack.close()
        time.sleep(0)
