"""Idle CPU: how much of a core a server with no traffic uses (busy-poll, then sleep).

    python bench/idle_cpu.py [--seconds 3] [--json bench/results/idle_cpu.json]

Each row starts a server on one loop, lets start-up settle (gratuitous ARP,
the busy-poll window of the last activity), then waits `--seconds` with no
traffic and reports the process's CPU time (user+sys, getrusage) over that
time as a share of one core, with the number of stack polls and epoll sleeps
the selector made. Rows: stock asyncio on the kernel; aiorusty on a loopback
interface with the default busy-poll and with none; aiorusty on a tap whose
kernel side sits in a namespace made here (root only: a real device fd in the
sleep set); two stacks over an in-process pair holding one idle TCP connection
(its timers armed). Also "echo round trip then idle": the CPU of one echo
round trip between two stacks on one loop plus the 20 ms after it (the
busy-poll tail, then sleep), and the stack polls that took.
The issue's target: an idle server uses under 5% of a core. Never a test assertion.
"""

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import resource
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from _machine import write_json  # noqa: E402  (bench/, the script's own directory)
from aiorusty import config as _config  # noqa: E402
from aiorusty.loop import RustyEventLoop  # noqa: E402


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _idle(loop, seconds):
    await asyncio.sleep(0.3)                 # start-up settles, busy-poll window ends
    sel = loop._selector
    t0, s0 = getattr(sel, "ticks", 0), getattr(sel, "sleeps", 0)
    c0, w0 = cpu(), loop.time()
    await asyncio.sleep(seconds)
    c1, w1 = cpu(), loop.time()
    return {"cpu_share": (c1 - c0) / (w1 - w0), "stack_polls": getattr(sel, "ticks", 0) - t0,
            "sleeps": getattr(sel, "sleeps", 0) - s0, "seconds": w1 - w0}


def idle_server(loop, host, seconds):
    async def main():
        server = await loop.create_server(asyncio.Protocol, host, 0)
        try:
            return await _idle(loop, seconds)
        finally:
            server.close()
            await server.wait_closed()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def idle_connection(seconds):
    """Two stacks over an in-process pair on one loop, one idle TCP connection open."""
    from aiorusty.nic import open_pair
    from aiorusty.tcp import Stack
    devs = open_pair()
    stacks = [Stack(seed=1), Stack(seed=2)]
    stacks[0].add_interface(devs[0], ip="10.77.0.1/24")
    stacks[1].add_interface(devs[1], ip="10.77.0.2/24")
    loop = RustyEventLoop(interfaces=(), stack=stacks)

    async def main():
        server = await loop.create_server(asyncio.Protocol, "10.77.0.1", 0)
        tr, _ = await loop.create_connection(asyncio.Protocol, "10.77.0.1", server.sockets[0].getsockname()[1])
        tr.write(b"x")
        try:
            return await _idle(loop, seconds)
        finally:
            tr.close()
            server.close()
            await asyncio.sleep(0.05)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()
        for st in stacks:
            st.close()
        for d in devs:
            d.close()


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def after_request(busy_poll_us, rounds=20):
    """CPU from one echo round trip until the loop sleeps again, averaged (two stacks, one loop)."""
    from aiorusty.nic import open_pair
    from aiorusty.tcp import Stack
    devs = open_pair()
    stacks = [Stack(seed=1), Stack(seed=2)]
    stacks[0].add_interface(devs[0], ip="10.78.0.1/24")
    stacks[1].add_interface(devs[1], ip="10.78.0.2/24")
    loop = RustyEventLoop(interfaces=(), stack=stacks, busy_poll_us=busy_poll_us)

    async def main():
        server = await loop.create_server(Echo, "10.78.0.1", 0)
        got = asyncio.Queue()

        class Client(asyncio.Protocol):
            def data_received(self, data):
                got.put_nowait(data)
        tr, _ = await loop.create_connection(Client, "10.78.0.1", server.sockets[0].getsockname()[1])
        sel = loop._selector
        total_cpu, total_polls = 0.0, 0
        for _ in range(rounds):
            await asyncio.sleep(0.05)        # asleep before the request
            c0, t0 = cpu(), sel.ticks
            tr.write(b"ping")
            await got.get()
            await asyncio.sleep(0.02)        # the busy-poll tail ends and the loop sleeps in here
            total_cpu += cpu() - c0
            total_polls += sel.ticks - t0
        tr.close()
        server.close()
        await asyncio.sleep(0.05)
        return {"cpu_us_per_request_and_20ms_after": total_cpu / rounds * 1e6, "stack_polls_per_request":
                total_polls / rounds}
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()
        for st in stacks:
            st.close()
        for d in devs:
            d.close()


@contextlib.contextmanager
def tap_loop():
    """An aiorusty loop on a tap whose kernel side is moved into a namespace made here."""
    from aiorusty.nic._host import configure_host_side
    tag = f"{os.getpid() % 100000}"
    ns, tap = f"ridle{tag}"[:15], f"ridt{tag}"[:15]
    net = 200 + os.getpid() % 50
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        loop = RustyEventLoop(f"tap:{tap},ip=10.{net}.0.2/24")
        configure_host_side(loop.stack.devices[0], host=f"10.{net}.0.1/24", netns=ns)
        yield loop, f"10.{net}.0.2"
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--json", default=os.path.join(HERE, "results", "idle_cpu.json"))
    ap.add_argument("--no-json", action="store_true")
    args = ap.parse_args()
    bp = _config.DEFAULT_BUSY_POLL_US
    rows = []

    def row(name, result):
        rows.append(dict(name=name, **result))
        extra = "  ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
                          if k not in ("cpu_share", "seconds"))
        share = f"{result['cpu_share'] * 100:6.3f}% of a core" if "cpu_share" in result else ""
        print(f"{name:52s} {share}  {extra}", flush=True)

    row("asyncio (kernel, 127.0.0.1)", idle_server(asyncio.SelectorEventLoop(), "127.0.0.1", args.seconds))
    row(f"aiorusty loopback iface, busy-poll {bp} us (default)",
        idle_server(RustyEventLoop("loopback,ip=10.77.0.1/24"), "10.77.0.1", args.seconds))
    row("aiorusty loopback iface, busy-poll 0",
        idle_server(RustyEventLoop("loopback,ip=10.77.0.1/24", busy_poll_us=0), "10.77.0.1", args.seconds))
    if os.geteuid() == 0:
        with tap_loop() as (loop, ip):
            row(f"aiorusty tap (kernel side in a netns), busy-poll {bp} us", idle_server(loop, ip, args.seconds))
    else:
        print("(not root: tap row skipped)")
    row("aiorusty 2 stacks, 1 idle TCP connection", idle_connection(args.seconds))
    for b in (bp, 0):
        row(f"aiorusty echo round trip then idle, busy-poll {b} us", after_request(b))
    record = {"bench": "idle_cpu", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", "bench/idle_cpu.py"] + sys.argv[1:]),
              "machine": platform.node(), "kernel": platform.release(), "python": platform.python_version(),
              "cores": os.cpu_count(), "pinning": "none (one process)", "seconds": args.seconds,
              "default_busy_poll_us": bp, "target": "idle server under 5% of a core", "rows": rows}
    if not args.no_json:
        write_json(args.json, record, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
