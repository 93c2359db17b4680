"""Entry points: aiorusty.new_event_loop() and aiorusty.run(), shaped like asyncio's.

Owns: making a RustyEventLoop from arguments or the environment, and running a
coroutine to completion on it exactly as asyncio.run does (asyncio.Runner on
3.11+, the same steps through asyncio's own helpers on 3.10). Not: the loop
(loop.py), the policy compatibility layer (policy.py).

    aiorusty.run(main(), interfaces=["loopback,ip=10.77.0.1/24"])
    asyncio.run(main(), loop_factory=aiorusty.new_event_loop)     # 3.12+, reads AIORUSTY_IFACE
    with asyncio.Runner(loop_factory=aiorusty.new_event_loop) as r: r.run(main())   # 3.11+
    uvicorn app:app --loop aiorusty:new_event_loop                 # AIORUSTY_IFACE=...
"""

import asyncio
import functools
import sys

from .loop import RustyEventLoop

__all__ = ["new_event_loop", "run"]


def new_event_loop(interfaces=None, **kw):
    """A new RustyEventLoop. interfaces: spec string(s) or Interface(s); None reads AIORUSTY_IFACE.

    Keyword arguments: busy_poll_us= (else AIORUSTY_BUSY_POLL_US), and stack options
    (seed=, max_tcp_conns=, ...; each else its AIORUSTY_<OPTION>: README, "Options").
    """
    return RustyEventLoop(interfaces, **kw)


def run(main, *, interfaces=None, debug=None, workers=None, **kw):
    """Run coroutine `main` on a new RustyEventLoop and close it, like asyncio.run().

    workers=N: one loop per pinned core instead. `main` is then a coroutine
    function, called as main(index, count) in each of N processes pinned to
    their own cores, each with its own stack on its own queue of every
    interface (queues=N,queue=K); returns the list of their results, and
    raises if a worker dies (aiorusty.testbed.workers).
    """
    if asyncio._get_running_loop() is not None:
        raise RuntimeError("aiorusty.run() cannot be called from a running event loop")
    if workers is not None:
        from .testbed.workers import run_main_in_workers
        return run_main_in_workers(main, workers, interfaces=interfaces, **kw)
    factory = functools.partial(new_event_loop, interfaces, **kw)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
            return runner.run(main)
    return _run_310(main, factory, debug)


def _run_310(main, factory, debug):
    # asyncio.run() of 3.10 with a loop factory: same checks, same shutdown order.
    from asyncio import coroutines, events, runners
    if not coroutines.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = factory()
    try:
        events.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            runners._cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            events.set_event_loop(None)
            loop.close()
