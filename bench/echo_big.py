"""Big write-then-read echoes: the client writes everything, then reads it all back.

    python bench/echo_big.py [--loops aiorusty,asyncio,uvloop] [--timeout 60] [--json FILE]

An asyncio streams echo server (read a chunk, write it back, await drain) and one client
in the same loop. Shapes: 8 MiB and 64 MiB written without awaiting drain, then read
back with readexactly; 8 MiB with write + await drain() before reading. aiorusty runs
stack to stack over an shm link opened twice in this process; asyncio and uvloop use
kernel TCP over 127.0.0.1. Each shape runs --runs times on one loop; the median is
reported, and the first run beside it. A shape that deadlocks (both ends stuck in drain because the
buffers between them are smaller than the write) is reported as "hang" after --timeout.
Figures, never assertions.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ.get("AIORUSTY_SRC") or ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _machine import describe, write_json  # noqa: E402
from _stacks import shm_pair  # noqa: E402

SHAPES = [("8MiB write, read", 8 * 2**20, False), ("64MiB write, read", 64 * 2**20, False),
          ("8MiB write+drain, read", 8 * 2**20, True)]
SHM_IPS = ("10.83.0.1", "10.83.0.2")


async def echo(reader, writer):
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def one(host, size, drain):
    server = await asyncio.start_server(echo, host, 0)
    port = server.sockets[0].getsockname()[1]
    payload = os.urandom(size)
    try:
        reader, writer = await asyncio.open_connection(host, port)
        t0 = time.perf_counter()
        writer.write(payload)
        if drain:
            await writer.drain()
        got = await reader.readexactly(size)
        elapsed = time.perf_counter() - t0
        assert got == payload, "echo differs"
        writer.close()
        return elapsed
    finally:
        server.close()


def new_loop(kind):
    """(loop, host, cleanup)."""
    if kind == "aiorusty":
        loop, _, cleanup = shm_pair(SHM_IPS)
        return loop, SHM_IPS[0], cleanup
    if kind == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    return loop, "127.0.0.1", loop.close


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loops", default="aiorusty,asyncio,uvloop")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a shape counts as a hang")
    ap.add_argument("--runs", type=int, default=5, help="echoes per shape and loop; the median is reported")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    results = []
    for kind in args.loops.split(","):
        for label, size, drain in SHAPES:
            # A fresh loop per shape: a hung shape leaves its connections behind.
            loop, host, cleanup = new_loop(kind)
            try:
                # Several echoes on one loop, the median reported: the first also pays for
                # what a warm process already has (malloc arenas, the stack's ring cache).
                runs = [loop.run_until_complete(asyncio.wait_for(one(host, size, drain), args.timeout))
                        for _ in range(args.runs)]
                seconds = statistics.median(runs)
                figure = (f"{seconds:.3f} s ({size / seconds / 2**20:.0f} MiB/s), median of {args.runs}; "
                          f"first {runs[0]:.3f} s")
            except asyncio.TimeoutError:
                seconds, figure = None, f"hang (no progress within {args.timeout:.0f} s)"
                for task in asyncio.all_tasks(loop):     # the stuck server handlers
                    task.cancel()
                loop.run_until_complete(asyncio.sleep(0.01))
            finally:
                cleanup()
            results.append({"loop": kind, "shape": label, "bytes": size, "seconds": seconds,
                            "runs": runs if seconds is not None else None})
            print(f"{kind:>9}  {label:<24} {figure}", flush=True)
    write_json(args.json, {**describe(link="aiorusty: shm in one process; others: kernel 127.0.0.1"),
                           "results": results})


if __name__ == "__main__":
    main()
