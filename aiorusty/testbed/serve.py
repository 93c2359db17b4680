"""`aiorusty serve`: the static HTTP server on aiorusty, stock asyncio or uvloop, in N pinned workers.

Owns: one server process (worker) from start to its stats: loop, listener,
readiness line, stop on SIGTERM/SIGINT or after --duration, and the counters
it reports (requests, statuses, CPU time from the first request on, the
stack's wire bytes). Not: HTTP (http.py), the launcher (workers.py).
"""

import asyncio
import os
import signal
import sys
import time

from . import loops
from .http import HttpProtocol, HttpServerState, Pages
from .workers import run_workers

DEFAULT_IFACE = "shm:aiorusty,ip=10.77.0.1/24"
DEFAULT_PORT = 8080


def _pages(opts):
    return Pages.folder(opts.root) if opts.root else Pages.generated(opts.pages.split(","))


def serve_worker(index, count, ready, opts):
    """Run one server until stopped; its stats dict."""
    kind = opts.loop
    iface = None
    if kind == "aiorusty":
        iface = loops.worker_interface(opts.iface, index, count)
        host = str(iface.ip.ip)
    else:
        host = opts.host
    loop, stack = loops.new_loop(kind, iface, busy_poll_us=opts.busy_poll_us)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(_serve(loop, stack, kind, host, index, count, ready, opts))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        if stack is not None:
            stack.close()


async def _serve(loop, stack, kind, host, index, count, ready, opts):
    state = HttpServerState(_pages(opts), loop, parser=opts.parser,
                            static_payload=loops.static_payload_class(kind))
    kw = {"reuse_port": True} if count > 1 and kind != "aiorusty" else {}
    server = await loop.create_server(lambda: HttpProtocol(state), host, opts.port, backlog=1024, **kw)
    port = server.sockets[0].getsockname()[1]
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    if opts.duration:
        loop.call_later(opts.duration, lambda: stop.done() or stop.set_result(None))
    where = f"{opts.iface if kind == 'aiorusty' else 'kernel'}"
    if index == 0 or not opts.quiet:
        # One write per line: workers share the pipe, and a write under PIPE_BUF is atomic.
        sys.stdout.write(f"aiorusty serve: http://{host}:{port}/ on {kind} ({where}), worker {index + 1}/{count}, "
                         f"pid {os.getpid()}\n")
        sys.stdout.flush()
    counters = loops.run_counters(loop, stack)
    ready()
    try:
        await stop
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    end_cpu, end_time = os.times(), time.monotonic()
    server.close()
    state.stop_clock()
    out = state.stats()
    out.update(worker=index, pid=os.getpid(), loop=kind, host=host, port=port,
               core=sorted(os.sched_getaffinity(0)))
    t0 = state.first_request_cpu
    if t0 is not None:
        out["cpu_user_s"] = end_cpu.user - t0.user
        out["cpu_sys_s"] = end_cpu.system - t0.system
        out["busy_s"] = end_time - state.first_request_time
    out.update(loops.run_report(loop, stack, counters))
    return out


def merge_server_stats(parts):
    total = {"requests": 0, "connections": 0, "bytes_out": 0, "responses": {}, "cpu_user_s": 0.0,
             "cpu_sys_s": 0.0, "workers": parts}
    for p in parts:
        for k in ("requests", "connections", "bytes_out"):
            total[k] += p[k]
        for k in ("cpu_user_s", "cpu_sys_s"):
            total[k] += p.get(k, 0.0)
        for code, n in p["responses"].items():
            total["responses"][code] = total["responses"].get(code, 0) + n
    total["cpu_s"] = total["cpu_user_s"] + total["cpu_sys_s"]
    total["cpu_us_per_request"] = total["cpu_s"] * 1e6 / total["requests"] if total["requests"] else None
    return total


def run(opts):
    """`aiorusty serve`: returns the exit status."""
    import json
    cores = [int(c) for c in opts.cpus.split(",")] if opts.cpus else None

    def on_ready():
        if opts.workers > 1:
            sys.stdout.write(f"aiorusty serve: {opts.workers} workers ready\n")
            sys.stdout.flush()
    parts = run_workers(serve_worker, opts.workers, (opts,), cores=cores, on_ready=on_ready)
    total = merge_server_stats(parts)
    print(f"aiorusty serve: {total['requests']} requests on {total['connections']} connections "
          f"({', '.join(f'{k}: {v}' for k, v in total['responses'].items()) or 'none'})", file=sys.stderr)
    if opts.stats_json:
        with open(opts.stats_json, "w") as f:
            json.dump(total, f, indent=1)
    return 0
