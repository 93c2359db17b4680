"""What the three bench servers share: build the chosen loop, serve, stop on SIGTERM.

    python APP.py LOOP HOST PORT        LOOP: asyncio | uvloop | aiorusty

aiorusty reads its interface from AIORUSTY_IFACE (bench/http_loops.py sets a
tap spec), exactly as an unmodified application would. The server binds HOST
only (never a wildcard), prints "ready PID" once it listens and exits 0 on
SIGTERM/SIGINT.
"""

import asyncio
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))      # the repository (aiorusty)

# BENCH_BODY_BYTES=N: a body of N bytes (one `bytes` object written whole, as an app
# serving a file it read would); the default is the 14-byte hello.
BODY = (b"x" * int(os.environ["BENCH_BODY_BYTES"])) if os.environ.get("BENCH_BODY_BYTES") else b"Hello, World!\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY


def new_loop(kind):
    if kind == "asyncio":
        return asyncio.SelectorEventLoop()
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if kind == "aiorusty":
        import aiorusty
        return aiorusty.new_event_loop()
    raise SystemExit(f"unknown loop {kind!r} (asyncio, uvloop, aiorusty)")


def serve(start):
    """start(loop, host, port) -> awaitable returning a stop coroutine function."""
    kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    loop = new_loop(kind)
    asyncio.set_event_loop(loop)
    stop = loop.run_until_complete(start(loop, host, port))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    print("ready", os.getpid(), flush=True)
    try:
        loop.run_forever()
        loop.run_until_complete(stop())
        sel = getattr(loop, "_selector", None)
        if hasattr(sel, "ticks"):       # aiorusty: how many stack polls / sleeps the whole run took
            print("stats", sel.ticks, sel.sleeps, flush=True)
    finally:
        loop.close()
