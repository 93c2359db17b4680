"""One connection over a long fat path: does it fill the path?

    python bench/long_fat_path.py [--delay 20ms] [--rate 500mbit] [--mb 64] [--json FILE]

Two stacks in this process joined by an shm link whose client end goes
through the fault injector (a delay line, both ways, and a rate limit: the
spec keys delay= and rate=), one asyncio streams connection: the client
writes --mb MiB, the server reads it all. A receive window that stayed at
its initial size would carry at most window / RTT (64 KiB / 40 ms = 13
Mbit/s); one auto-tuned to the bandwidth-delay product carries close to --rate. Prints the goodput,
the path's rate, the largest receive window seen and the stacks' buffer
counters after the transfer (the memory goes back); figures, never assertions.
"""

import argparse
import asyncio
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ.get("AIORUSTY_SRC") or ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _machine import describe, write_json  # noqa: E402
from _stacks import shm_pair  # noqa: E402

IPS = ("10.86.0.1", "10.86.0.2")


def rate_bits(text):
    units = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
    for unit, scale in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


async def transfer(size, server_stack):
    got, peak = 0, 0
    done = asyncio.Event()

    async def sink(reader, writer):
        nonlocal got, peak
        while chunk := await reader.read(1 << 20):
            got += len(chunk)
            info = server_stack.tcp_info(writer.transport._handle)
            peak = max(peak, info["rcv_wnd"])
        writer.close()
        done.set()

    server = await asyncio.start_server(sink, IPS[0], 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection(IPS[0], port)
    data = os.urandom(1 << 20)
    t0 = time.perf_counter()
    for _ in range(size >> 20):
        writer.write(data)
        await writer.drain()
    writer.close()
    await done.wait()
    elapsed = time.perf_counter() - t0
    server.close()
    return got, elapsed, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--delay", default="20ms", help="delay added each way at the client's end (default 20ms)")
    ap.add_argument("--rate", default="500mbit", help="rate limit on the client's side (default 500mbit)")
    ap.add_argument("--mb", type=int, default=64, help="MiB to send (default 64)")
    ap.add_argument("--json", default="", help="write the result here")
    args = ap.parse_args()

    loop, stacks, cleanup = shm_pair(IPS, f"delay={args.delay},rate={args.rate},seed=1")
    try:
        got, elapsed, peak = loop.run_until_complete(asyncio.wait_for(transfer(args.mb << 20, stacks[0]), 300))
        loop.run_until_complete(asyncio.sleep(0.5))
        after = [{k: st.stats().get(k) for k in ("tcp_buffer_bytes", "tcp_rcvbuf_grown", "tcp_retransmits")}
                 for st in stacks]
    finally:
        cleanup()
    mbps = got * 8 / elapsed / 1e6
    path = rate_bits(args.rate) / 1e6
    print(f"{got >> 20} MiB in {elapsed:.2f} s: {mbps:.0f} Mbit/s on a {path:.0f} Mbit/s path "
          f"({mbps / path:.2f} of it), delay {args.delay} each way; largest receive window {peak >> 10} KiB; "
          f"after: server {after[0]}, client {after[1]}")
    write_json(args.json, {**describe(device="shm+faults", delay=args.delay, rate=args.rate),
                           "mib": got >> 20, "seconds": round(elapsed, 3), "mbit_s": round(mbps, 1),
                           "path_mbit_s": path, "peak_rcv_wnd": peak, "after": after})


if __name__ == "__main__":
    main()
