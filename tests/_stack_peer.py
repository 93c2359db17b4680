"""Driving a Stack while a real Linux peer (a process in a netns) talks to it.

The stack is polled in this thread; the peer runs as a subprocess, so the test
never blocks on either side. Every loop is bounded in time.
"""

import errno
import select
import subprocess
import time

import pytest

from aiorusty._rusty import lib

# A UDP peer for `python3 -c` inside a namespace: bind, say "ready", then act.
UDP_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.bind(("0.0.0.0", 0))
print("ready", flush=True)
s.sendto(b"hello from linux", (sys.argv[1], int(sys.argv[2])))
data, addr = s.recvfrom(2048)
print(data.decode(), addr[0], addr[1], flush=True)
"""

UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
data, addr = s.recvfrom(2048)
s.sendto(data[::-1], addr)
print(data.decode(), addr[0], addr[1], flush=True)
"""


def skip_if_enosys(exc, what):
    if isinstance(exc, OSError) and exc.errno == errno.ENOSYS:
        pytest.skip(f"{what} driver not built yet (ENOSYS): lands on another helper's branch")
    raise exc


def serve(stack, proc, timeout=15.0, on_event=None, until=None):
    """Poll the stack until proc exits (or until() is true); returns (stdout, stderr).

    on_event(ev) is called for each stack event; the UDP echo server of the
    tests lives there.
    """
    deadline = time.monotonic() + timeout
    fds = stack.fds()
    try:
        while time.monotonic() < deadline:
            for ev in stack.poll():
                if on_event:
                    on_event(ev)
            if until is not None and until():
                break
            if proc is not None and proc.poll() is not None:
                # one more round for frames in flight
                stack.poll()
                break
            nd = stack.next_deadline()
            wait = 0.01 if nd is None else max(0.0, min(0.01, (nd - stack.now_us()) / 1e6))
            select.select(fds, [], [], wait)
        else:
            raise TimeoutError(f"peer did not finish in {timeout}s")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
    if proc is None:
        return "", ""
    out, err = proc.communicate(timeout=5)
    return out, err


def udp_echo_handler(stack, sock):
    """An on_event callback that echoes every datagram on sock."""

    def on_event(ev):
        if ev[0] == sock and ev[1] == lib.RUSTY_EV_UDP_READABLE:
            while (d := stack.udp_recvfrom(sock)) is not None:
                stack.udp_sendto(sock, d[0], d[1])

    return on_event


def popen_ns(ns, *argv):
    return subprocess.Popen(["ip", "netns", "exec", ns, *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_line(stack, proc, expect="ready", timeout=10.0):
    """Poll the stack until proc prints a line (its readiness), returning it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.poll()
        r, _, _ = select.select([proc.stdout], [], [], 0.01)
        if r:
            line = proc.stdout.readline().strip()
            if line == expect:
                return line
            raise AssertionError(f"peer said {line!r}, stderr: {proc.stderr.read()}")
        if proc.poll() is not None:
            raise AssertionError(f"peer exited early: {proc.stderr.read()}")
    proc.kill()
    raise TimeoutError("peer never became ready")


def udp_both_ways(stack, ns, stack_ip, peer_ip):
    """Linux -> stack echo, then stack -> Linux echo; asserts on both."""
    import sys

    sock = stack.udp_bind(None, 7)
    try:
        proc = popen_ns(ns, sys.executable, "-c", UDP_SEND, stack_ip, 7)
        out, err = serve(stack, proc, on_event=udp_echo_handler(stack, sock))
        assert proc.returncode == 0, err
        lines = out.split("\n")
        assert lines[0] == "ready"
        data, src, port = lines[1].rsplit(" ", 2)
        assert data == "hello from linux" and src == stack_ip and port == "7"
    finally:
        stack.udp_close(sock)

    sock = stack.udp_bind(None, 0)
    try:
        proc = popen_ns(ns, sys.executable, "-c", UDP_ECHO, peer_ip, 9000)
        wait_line(stack, proc)
        stack.udp_sendto(sock, b"hello from rusty", (peer_ip, 9000))
        got = []

        def on_event(ev):
            if ev[0] == sock and ev[1] == lib.RUSTY_EV_UDP_READABLE:
                while (d := stack.udp_recvfrom(sock)) is not None:
                    got.append(d)

        out, err = serve(stack, proc, on_event=on_event)
        if not got:
            serve(stack, None, timeout=2, on_event=on_event, until=lambda: bool(got))
        assert proc.returncode == 0, err
        _, port = stack.udp_getsockname(sock)
        assert out.strip() == f"hello from rusty {stack_ip} {port}"
        assert got == [(b"ytsur morf olleh", (peer_ip, 9000))]
    finally:
        stack.udp_close(sock)
