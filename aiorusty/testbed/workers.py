"""One process per pinned core: start N workers, collect their results, fail clearly.

Owns: forking N worker processes, pinning worker K to its core
(os.sched_setaffinity), the readiness handshake (each worker says "ready"
once it listens / is connected; the caller hears once all are), forwarding
SIGINT/SIGTERM, merging nothing itself (callers merge the result dicts), and
turning a worker that dies into WorkerFailed naming the worker, its pid, its
core and its exit status (the others are stopped). Not: what a worker runs.

This is the launcher `aiorusty.run(main, workers=N)` can call later: see
run_workers(); a worker function gets (index, count, ready) and returns a
JSON-able dict. With count == 1 the function runs in this process, pinned.
"""

import multiprocessing
import os
import signal
import time
import traceback
from multiprocessing.connection import wait

__all__ = ["WorkerFailed", "run_workers", "default_workers", "available_cores", "pin"]


class WorkerFailed(RuntimeError):
    """A worker process died or raised; the message names which and how."""


def available_cores():
    return sorted(os.sched_getaffinity(0))


def default_workers():
    return len(available_cores())


def pin(core):
    """Pin this process to one core (None: leave it)."""
    if core is not None:
        os.sched_setaffinity(0, {core})


def _child(fn, index, count, core, conn, args):
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the parent forwards SIGTERM to stop us
    try:
        pin(core)
        result = fn(index, count, lambda: conn.send(("ready", index)), *args)
        conn.send(("result", index, result))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then exit non-zero
        try:
            conn.send(("error", index, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        finally:
            os._exit(1)
    os._exit(0)


def run_workers(fn, count, args=(), cores=None, on_ready=None, timeout=None):
    """Run fn(index, count, ready, *args) in `count` pinned processes; their results in index order.

    cores: the core of each worker (default: the available cores, round robin).
    on_ready: called once when every worker has called its ready().
    timeout: seconds after which the workers are stopped and WorkerFailed raised.
    """
    cores = list(cores) if cores is not None else available_cores()
    if count == 1:
        pin(cores[0] if cores else None)
        return [fn(0, 1, on_ready or (lambda: None), *args)]
    ctx = multiprocessing.get_context("fork")
    procs, conns = [], []
    for i in range(count):
        parent, child = ctx.Pipe(duplex=False)
        core = cores[i % len(cores)] if cores else None
        p = ctx.Process(target=_child, args=(fn, i, count, core, child, args), name=f"aiorusty-worker-{i}")
        p.start()
        child.close()
        procs.append((p, core))
        conns.append(parent)
    results = [None] * count
    ready = set()
    failure = None
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def forward(signum, frame):
        for p, _ in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
    for s in old:
        signal.signal(s, forward)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        live = {c: i for i, c in enumerate(conns)}
        while live and failure is None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            got = wait(list(live), left)
            if not got:
                failure = f"workers did not finish within {timeout:.0f} s"
                break
            for c in got:
                i = live[c]
                try:
                    msg = c.recv()
                except EOFError:
                    p, core = procs[i]
                    p.join(5)
                    code = p.exitcode
                    how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                    failure = (f"worker {i} (pid {p.pid}, core {core}) died with {how} before reporting; "
                               "the run is incomplete")
                    del live[c]
                    break
                if msg[0] == "ready":
                    ready.add(i)
                    if len(ready) == count and on_ready is not None:
                        on_ready()
                elif msg[0] == "result":
                    results[i] = msg[2]
                    del live[c]
                else:
                    p, core = procs[i]
                    failure = f"worker {i} (pid {p.pid}, core {core}) failed: {msg[2]}\n{msg[3]}"
                    del live[c]
                    break
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if failure is not None:
            for p, _ in procs:
                if p.is_alive():
                    p.terminate()
        for p, _ in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
        for c in conns:
            c.close()
    if failure is not None:
        raise WorkerFailed(failure)
    return results


def _main_worker(index, count, ready, main, interfaces, kw):
    from .. import runner
    from .loops import worker_interface
    ifaces = [worker_interface(i, index, count) for i in interfaces] if interfaces else interfaces
    coro = main(index, count) if callable(main) else main
    ready()
    return runner.run(coro, interfaces=ifaces, **kw)


def run_main_in_workers(main, workers=None, *, interfaces=None, cores=None, **kw):
    """The hook for `aiorusty.run(main, workers=N)`: N pinned processes, each running `main`
    on its own RustyEventLoop whose interfaces are opened on the worker's own queue
    (queues=N,queue=K on every driver). `main` is a coroutine function
    called as main(index, count), or (with fork) a coroutine object each worker runs its copy of.
    Returns the list of the workers' results (which must be picklable); WorkerFailed if one dies."""
    count = workers or default_workers()
    specs = list(interfaces) if isinstance(interfaces, (list, tuple)) else ([interfaces] if interfaces else None)
    return run_workers(_main_worker, count, (main, specs, kw), cores=cores)
