"""Idle CPU of a loop with an interface configured and nothing to do (a measurement, not a test).

    python -m tests.loop.idle_cpu [seconds]

Prints the process CPU time (user+sys from resource.getrusage) spent while an
idle server waits, for stock asyncio and for aiorusty (default busy-poll and
none), plus how many stack polls and epoll sleeps the selector made.
"""

import asyncio
import resource
import sys

from aiorusty.loop import RustyEventLoop


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(loop, host, seconds):
    async def main():
        server = await loop.create_server(asyncio.Protocol, host, 0)
        await asyncio.sleep(0.2)                     # start-up (gratuitous ARP, ...) settles
        sel = loop._selector
        ticks0 = getattr(sel, "ticks", 0)
        sleeps0 = getattr(sel, "sleeps", 0)
        c0, t0 = cpu(), loop.time()
        await asyncio.sleep(seconds)
        c1, t1 = cpu(), loop.time()
        server.close()
        await server.wait_closed()
        return (c1 - c0) / (t1 - t0), getattr(sel, "ticks", 0) - ticks0, getattr(sel, "sleeps", 0) - sleeps0
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def measure_idle_connection(seconds):
    """Two stacks over a pair on one loop, one idle TCP connection open (its timers armed)."""
    from aiorusty.nic import open_pair
    from aiorusty.tcp import Stack
    from aiorusty.tcp._stack import close_device
    devs = open_pair()
    stacks = [Stack(seed=1), Stack(seed=2)]
    stacks[0].add_interface(devs[0], ip="10.77.0.1/24")
    stacks[1].add_interface(devs[1], ip="10.77.0.2/24")
    loop = RustyEventLoop(interfaces=(), stack=stacks)

    async def main():
        server = await loop.create_server(asyncio.Protocol, "10.77.0.1", 0)
        tr, _ = await loop.create_connection(asyncio.Protocol, "10.77.0.1", server.sockets[0].getsockname()[1])
        tr.write(b"x")
        await asyncio.sleep(0.5)
        sel = loop._selector
        ticks0, sleeps0 = sel.ticks, sel.sleeps
        c0, t0 = cpu(), loop.time()
        await asyncio.sleep(seconds)
        c1, t1 = cpu(), loop.time()
        tr.close()
        server.close()
        await asyncio.sleep(0.05)
        return (c1 - c0) / (t1 - t0), sel.ticks - ticks0, sel.sleeps - sleeps0
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()
        for st in stacks:
            st.close()
        for d in devs:
            close_device(d)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    rows = [
        ("asyncio (kernel)", asyncio.SelectorEventLoop(), "127.0.0.1"),
        ("aiorusty loopback iface, busy-poll 100us", RustyEventLoop("loopback,ip=10.77.0.1/24"), "10.77.0.1"),
        ("aiorusty loopback iface, busy-poll 0", RustyEventLoop("loopback,ip=10.77.0.1/24", busy_poll_us=0),
         "10.77.0.1"),
    ]
    for name, loop, host in rows:
        share, ticks, sleeps = measure(loop, host, seconds)
        print(f"{name:45s} {share * 100:6.3f}% of a core over {seconds:g}s  (stack polls {ticks}, sleeps {sleeps})")
    share, ticks, sleeps = measure_idle_connection(seconds)
    print(f"{'aiorusty 2 stacks, 1 idle TCP connection':45s} {share * 100:6.3f}% of a core over {seconds:g}s  "
          f"(stack polls {ticks}, sleeps {sleeps})")


if __name__ == "__main__":
    main()
