"""Many connections: 1000 concurrent against the Linux stack, and 10,000 opened
and closed in sequence between two aiorusty stacks with no leak (connections,
buffer bytes and socket slots back to zero)."""

import sys

import pytest

from aiorusty._rusty import lib
from aiorusty.nic import open_pair
from aiorusty.tcp import Stack

from _interop import HOST_IP, STACK_IP, pump, tap_stack
from _lockstep import Lockstep
from _netns import needs_root
from _stack_peer import popen_ns


def two_stacks(**config):
    a, b = open_pair(pool=8192)
    config.setdefault("tcp_msl_us", 1000)
    sa = Stack(seed=1, **config)
    sb = Stack(seed=2, **config)
    sa.add_interface(a, 0, ip="10.1.0.1/24")
    sb.add_interface(b, 0, ip="10.1.0.2/24")
    return sa, sb, a, b


def test_10k_sequential_connections_no_leak():
    sa, sb, a, b = two_stacks(tcp_sndbuf=16384, tcp_rcvbuf=16384)
    now = 0
    try:
        lsock = sa.tcp_listen(None, 80)
        pending = []

        def tick():
            nonlocal now
            now += 100
            evs = sa.poll(now) + sb.poll(now)
            pending.extend(evs)
            return evs

        for i in range(10_000):
            cs = sb.tcp_connect(("10.1.0.1", 80), now_us=now)
            ss = None
            for _ in range(20):
                tick()
                if ss is None:
                    ss = sa.tcp_accept(lsock)
                if ss is not None and sb.tcp_info(cs)["state"] == "ESTABLISHED":
                    break
            assert ss is not None, f"connection {i} not accepted"
            sb.tcp_send(cs, b"hi %d" % i, now)
            for _ in range(20):
                tick()
                got = sa.tcp_recv(ss)
                if got:
                    break
            assert got == b"hi %d" % i
            sa.tcp_close(ss, now)           # server closes first: TIME-WAIT on its side
            for _ in range(20):
                tick()
                if sb.tcp_recv(cs) == b"":
                    break
            sb.tcp_close(cs, now)
            tick()
            tick()
            pending.clear()
        now += 10_000
        tick()
        for st in (sa.stats(), sb.stats()):
            assert st["tcp_conns"] == 0, st
            assert st["tcp_buffer_bytes"] == 0
        assert sa.stats()["sockets"] == 1         # the listener
        assert sb.stats()["sockets"] == 0
        assert sa.stats()["tcp_passive_opens"] == 10_000
    finally:
        sa.close()
        sb.close()
        a.close()
        b.close()


LINUX_MANY = r"""
import selectors, socket, sys
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sel = selectors.DefaultSelector()
socks = []
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((ip, port))
    socks.append(s)
    sel.register(s, selectors.EVENT_WRITE, i)
sent = set()
got = {}
import time
deadline = time.time() + 60
while len(got) < n and time.time() < deadline:
    for key, ev in sel.select(1):
        s, i = key.fileobj, key.data
        if ev & selectors.EVENT_WRITE and i not in sent:
            s.send(b"conn %d\n" % i)
            sent.add(i)
            sel.modify(s, selectors.EVENT_READ, i)
        elif ev & selectors.EVENT_READ:
            d = s.recv(100)
            got[i] = d
            sel.unregister(s)
ok = sum(1 for i, d in got.items() if d == b"CONN %d\n" % i)
for s in socks:
    s.close()
print(ok, flush=True)
"""


@needs_root
@pytest.mark.timeout(120)
def test_1000_concurrent_linux_clients():
    with tap_stack(max_tcp_conns=2048, tcp_sndbuf=8192, tcp_rcvbuf=8192) as (stack, ns):
        lsock = stack.tcp_listen(None, 7000, 1024)
        proc = popen_ns(ns, "sh", "-c", f"ulimit -n 4096; exec {sys.executable} -c '{LINUX_MANY}' {STACK_IP} 7000 1000")
        conns = set()
        answered = set()
        peak = [0]

        def on_event(ev):
            if ev[0] == lsock and ev[1] == lib.RUSTY_EV_TCP_ACCEPT:
                while (s := stack.tcp_accept(lsock)) is not None:
                    conns.add(s)
                peak[0] = max(peak[0], stack.stats()["tcp_conns"])
            elif ev[0] in conns and ev[1] == lib.RUSTY_EV_TCP_READABLE and ev[0] not in answered:
                d = stack.tcp_recv(ev[0], 100)
                if d:
                    stack.tcp_send(ev[0], d.upper())
                    answered.add(ev[0])

        pump(stack, lambda: proc.poll() is not None, 90, on_event)
        out, err = proc.communicate(timeout=5)
        assert out.strip() == "1000", err
        assert len(answered) == 1000
        assert peak[0] >= 900               # they really were open at the same time
        assert stack.stats()["tcp_passive_opens"] == 1000
        for s in conns:
            stack.tcp_close(s)
        stack.tcp_close(lsock)


LINUX_ECHO_MANY = r"""
import selectors, socket, sys
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sel = selectors.DefaultSelector()
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((ip, port)); ls.listen(2048); ls.setblocking(False)
sel.register(ls, selectors.EVENT_READ, None)
print("ready", flush=True)
served = 0
import time
deadline = time.time() + 60
while served < n and time.time() < deadline:
    for key, ev in sel.select(1):
        if key.data is None:
            while True:
                try:
                    c, _ = ls.accept()
                except BlockingIOError:
                    break
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ, 1)
        else:
            d = key.fileobj.recv(100)
            if d:
                key.fileobj.send(d.upper())
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                served += 1
print(served, flush=True)
"""


@needs_root
@pytest.mark.timeout(120)
def test_1000_concurrent_rusty_clients_to_linux():
    from _stack_peer import wait_line

    with tap_stack(max_tcp_conns=2048, tcp_sndbuf=8192, tcp_rcvbuf=8192) as (stack, ns):
        proc = popen_ns(ns, "sh", "-c",
                        f"ulimit -n 4096; exec {sys.executable} -c '{LINUX_ECHO_MANY}' {HOST_IP} 7001 1000")
        wait_line(stack, proc)
        socks = {stack.tcp_connect((HOST_IP, 7001)): i for i in range(1000)}
        got = {}
        peak = [0]

        def on_event(ev):
            s, kind = ev[0], ev[1]
            if s not in socks:
                return
            if kind == lib.RUSTY_EV_TCP_CONNECTED:
                stack.tcp_send(s, b"conn %d" % socks[s])
                peak[0] = max(peak[0], stack.stats()["tcp_conns"])
            elif kind == lib.RUSTY_EV_TCP_READABLE and s not in got:
                d = stack.tcp_recv(s)
                if d:
                    got[s] = d
                    stack.tcp_close(s)
            elif kind == lib.RUSTY_EV_TCP_CLOSED:
                raise AssertionError(f"connection {socks[s]} closed: {ev}")

        pump(stack, lambda: len(got) == 1000, 90, on_event)
        assert all(d == b"CONN %d" % socks[s] for s, d in got.items())
        assert stack.stats()["tcp_active_opens"] == 1000
        assert peak[0] >= 900
        pump(stack, lambda: proc.poll() is not None, 30)
        out, err = proc.communicate(timeout=5)
        assert out.split()[-1] == "1000", err


def test_time_wait_connections_hold_no_buffers():
    """2*MSL of TIME-WAIT must not pin memory: with a tcp_mem of a few
    connections' windows, 50 connections opened and actively closed in a row all
    succeed while every one of them still lingers in TIME-WAIT."""
    ring = 64 * 1024
    sa, sb, a, b = two_stacks(tcp_sndbuf=ring, tcp_rcvbuf=ring, tcp_mem=8 * ring, tcp_msl_us=60_000_000)
    clock = Lockstep(sa, sb)
    try:
        lsock = sa.tcp_listen(None, 80)
        for i in range(50):
            cs, ss = clock.connect(lsock)
            assert ss is not None, f"connection {i} not accepted: {sa.stats()['tcp_buffer_bytes']} bytes held"
            sb.tcp_send(cs, b"x" * 100, clock.now)
            clock.tick(lambda: sa.tcp_recv(ss) == b"x" * 100)
            sb.tcp_close(cs, clock.now)     # the client closes first: TIME-WAIT on its side
            clock.tick(lambda: sa.tcp_recv(ss) == b"")
            sa.tcp_close(ss, clock.now)
            clock.tick(n=5)
        st = sb.stats()
        assert st["tcp_conns"] == 50                # all 50 in TIME-WAIT (2*MSL = 120 s)
        assert st["tcp_buffer_bytes"] == 0 and st["tcp_mem_bytes"] == 0
        assert sa.stats()["tcp_buffer_bytes"] == 0 and sa.stats()["tcp_conns"] == 0
        assert sa.stats()["tcp_mem_bytes"] == 0
    finally:
        sa.close()
        sb.close()
        a.close()
        b.close()


def test_time_wait_is_capped():
    """Past tcp_max_time_wait blocks in TIME-WAIT the oldest ends early (Linux's
    tcp_max_tw_buckets): 30 connections closed first by the client leave 10."""
    sa, sb, a, b = two_stacks(tcp_max_time_wait=10, tcp_msl_us=60_000_000)
    clock = Lockstep(sa, sb)
    try:
        lsock = sa.tcp_listen(None, 80)
        for i in range(30):
            cs, ss = clock.connect(lsock)
            sb.tcp_close(cs, clock.now)
            clock.tick(lambda: sa.tcp_recv(ss) == b"")
            sa.tcp_close(ss, clock.now)
            clock.tick(n=5)
        st = sb.stats()
        assert st["tcp_conns"] == 10 and st["tcp_time_wait_recycled"] == 20
    finally:
        sa.close()
        sb.close()
        a.close()
        b.close()


def test_time_wait_does_not_lock_out_new_connections():
    """A server that closes first keeps a TIME-WAIT block per connection for 2*MSL.
    With a table of 8 control blocks, 30 connections in a row are all accepted:
    the oldest TIME-WAIT block is ended early for each new one (counted), as
    Linux does past tcp_max_tw_buckets."""
    sa, sb, a, b = two_stacks(max_tcp_conns=8, tcp_msl_us=60_000_000)
    clock = Lockstep(sa, sb)
    try:
        lsock = sa.tcp_listen(None, 80)
        for i in range(30):
            cs, ss = clock.connect(lsock)
            assert ss is not None, f"connection {i} not accepted: {sa.stats()}"
            sa.tcp_send(ss, b"bye", clock.now)
            sa.tcp_close(ss, clock.now)     # the server closes first: TIME-WAIT on its side
            clock.tick(lambda: sb.tcp_recv(cs) == b"bye")
            clock.tick(lambda: sb.tcp_recv(cs) == b"")
            sb.tcp_close(cs, clock.now)
            clock.tick(n=5)
        st = sa.stats()
        assert st["tcp_conns"] == 8 and st["tcp_time_wait_recycled"] == 30 - 8
    finally:
        for s in (sa, sb):
            s.close()
        a.close()
        b.close()
