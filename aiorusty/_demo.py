"""`aiorusty demo`: two user-space stacks in two processes over the shm link.

The embedded default that needs no root and no NIC: a child process runs a
stack that answers pings and echoes UDP; the parent pings it and streams UDP
datagrams through it, then prints round-trip times, datagrams per second and
both stacks' counters. Everything is bounded by count and by time.
"""

import multiprocessing
import os
import statistics
import time

from ._rusty import lib

ECHO_PORT = 7
SERVER_IP, CLIENT_IP = "10.99.0.2", "10.99.0.1"


def _spec(name, ip):
    return f"shm:{name},ip={ip}/24"


def _echo_server(name, ready, stop_after_s):
    from .tcp import Stack

    with Stack([_spec(name, SERVER_IP)]) as stack:
        sock = stack.udp_bind(SERVER_IP, ECHO_PORT)
        ready.set()
        deadline = time.monotonic() + stop_after_s
        while time.monotonic() < deadline:
            for ev in stack.poll():
                if ev[1] == lib.RUSTY_EV_UDP_READABLE:
                    while (got := stack.udp_recvfrom(sock)) is not None:
                        data, peer = got
                        if data == b"stop":
                            return
                        stack.udp_sendto(sock, data, peer)


def _wait(stack, until, timeout_s):
    """Poll until `until(events)` is true or the timeout passes; returns the events seen last."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        events = stack.poll()
        if until(events):
            return True
    return False


def run_demo(count=1000, size=64, timeout_s=20.0, out=print):
    from .tcp import Stack

    name = f"demo{os.getpid()}"
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_echo_server, args=(name, ready, timeout_s + 5), daemon=True)
    with Stack([_spec(name, CLIENT_IP)]) as stack:
        child.start()
        if not ready.wait(timeout_s):
            raise RuntimeError("demo: the echo stack did not start (see its traceback above)")
        # Ping: the first request also resolves ARP.
        rtts = []
        for seq in range(10):
            t0 = time.perf_counter()
            stack.ping(SERVER_IP, ident=0x5259, seq=seq, size=56)
            if _wait(stack, lambda evs: any(e[1] == lib.RUSTY_EV_ICMP_ECHO_REPLY and e[3] == seq for e in evs), 2.0):
                rtts.append((time.perf_counter() - t0) * 1e6)
        out(f"ping {SERVER_IP}: {len(rtts)}/10 replies, rtt min/avg/max = "
            + (f"{min(rtts):.0f}/{statistics.mean(rtts):.0f}/{max(rtts):.0f} us" if rtts else "-"))
        # UDP echo, one datagram in flight at a time, bounded by count and time.
        sock = stack.udp_bind(CLIENT_IP, 0)
        payload = bytes(range(256)) * (size // 256 + 1)
        payload = payload[:size]
        done, t0 = 0, time.perf_counter()
        while done < count and time.perf_counter() - t0 < timeout_s:
            stack.udp_sendto(sock, payload, (SERVER_IP, ECHO_PORT))
            if not _wait(stack, lambda evs: any(e[1] == lib.RUSTY_EV_UDP_READABLE for e in evs), 2.0):
                break
            got = stack.udp_recvfrom(sock)
            if got is None or got[0] != payload:
                raise RuntimeError("demo: echo came back wrong")
            done += 1
        elapsed = time.perf_counter() - t0
        out(f"udp echo: {done}/{count} datagrams of {size} B intact, "
            f"{done / elapsed:,.0f} round trips/s ({elapsed * 1e6 / max(done, 1):.1f} us each)")
        stack.udp_sendto(sock, b"stop", (SERVER_IP, ECHO_PORT))
        stack.poll()
        stats = stack.stats()
        out("client stack: " + ", ".join(f"{k}={stats[k]}" for k in (
            "eth_rx_frames", "eth_tx_frames", "arp_tx_requests", "icmp_echo_replies", "udp_rx", "udp_tx")))
    child.join(5)
    if child.is_alive():
        child.kill()
    return done == count and len(rtts) == 10
