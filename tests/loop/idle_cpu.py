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


if __name__ == "__main__":
    main()
