"""Which event loop a test-bed process runs on, and its user-space stack.

Owns: making the loop for `--kernel` (stock asyncio), `--uvloop` and the
default aiorusty loop on an interface spec; for aiorusty, opening the device
ourselves so a process holding every queue of an shm link steers frames by the
symmetric flow hash (RUSTY_DEVF_STEER, see steer.py), and giving worker K of N
queue K of the link. Not: the loop itself (aiorusty.loop), devices (aiorusty.nic).
"""

import asyncio
import dataclasses
import os

from ..nic import Interface

KINDS = ("aiorusty", "asyncio", "uvloop")


def worker_interface(spec, worker=0, workers=1):
    """The interface worker `worker` of `workers` opens: queues=N,queue=K (shm, tap, afpacket).

    afpacket's queue K of N keeps the frames whose flow hash (steer.flow_queue) is K, and a
    tap's eBPF steering program sends them to queue K, so steer.PortPicker works over both
    as over shm. On a tap, worker K attaches its queue once workers 0..K-1 have (the kernel
    numbers queues by attach order), and worker 0 answers ARP for all."""
    iface = Interface.parse(spec)
    if workers > 1:
        if iface.driver in ("shm", "tap", "afpacket"):
            iface = dataclasses.replace(iface, queues=workers, queue=worker)
        else:
            raise ValueError(f"--workers {workers}: {iface.driver} has no queues; use shm:, tap: or afpacket:")
    return iface


def open_stack(iface, **stack_options):
    """A Stack on iface; an shm device holding several queues steers by flow hash.

    Stack options not given here come from AIORUSTY_<OPTION>, as for the loop."""
    from .._rusty import lib
    from ..config import stack_options_from
    from ..nic import _device
    from ..tcp import Stack
    stack_options = stack_options_from(os.environ, stack_options)
    iface = Interface.parse(iface)
    if iface.driver == "shm" and iface.queue is None:
        cfg = _device._config(iface)
        cfg.flags |= lib.RUSTY_DEVF_STEER
        ptr = _device._open_driver(iface, cfg)
        if iface.mac:
            lib.rusty_dev_set_mac(ptr, bytes.fromhex(iface.mac.replace(":", "")))
        dev = _device.Device(_device._wrap(ptr, iface), iface)
        stack = Stack(**stack_options)
        try:
            stack.add_interface(dev)
        except BaseException:
            stack.close()
            dev.close()
            raise
        stack._devices[-1] = (dev, True)       # the stack closes it after itself
        return stack
    return Stack([iface], **stack_options)


def new_loop(kind, iface=None, busy_poll_us=None, **stack_options):
    """(loop, stack or None) for kind in KINDS."""
    if kind == "asyncio":
        return asyncio.SelectorEventLoop(), None
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise RuntimeError("--uvloop: uvloop is not installed (pip install uvloop)") from None
        return uvloop.new_event_loop(), None
    from ..loop import RustyEventLoop
    stack = open_stack(iface, **stack_options)
    try:
        loop = RustyEventLoop((), stack=stack, busy_poll_us=busy_poll_us)
    except BaseException:
        stack.close()
        raise
    return loop, stack


def static_payload_class(kind):
    """aiorusty.StaticPayload when the aiorusty loop offers it, else None (bodies go as bytes)."""
    if kind != "aiorusty":
        return None
    import aiorusty
    return getattr(aiorusty, "StaticPayload", None)


def _wire_bytes(stack):
    s = stack.stats()
    return s["eth_rx_bytes"], s["eth_tx_bytes"]


def _tick_counts(loop):
    """An aiorusty loop's stack polls, those that found socket events, and its sleeps in
    epoll: how much of a run was spent spinning."""
    sel = loop._selector
    grew, shrank = sel.window_changes
    return {"polls": sel.ticks, "polls_with_events": sel.event_ticks, "sleeps": sel.sleeps,
            "window_grew": grew, "window_shrank": shrank}


def run_counters(loop, stack):
    """The counters a run reports, taken at its start (None without a stack)."""
    if stack is None:
        return None
    return _wire_bytes(stack), _tick_counts(loop)


def run_report(loop, stack, start):
    """What the stack and the loop did since run_counters(): wire bytes, retransmits, the
    stack's nonzero counters (for a run that looks wrong: drops, resets, recycling) and
    the loop's ticks. Empty without a stack."""
    if stack is None:
        return {}
    (rx0, tx0), ticks0 = start
    rx, tx = _wire_bytes(stack)
    s = stack.stats()
    return {"wire_rx_bytes": rx - rx0, "wire_tx_bytes": tx - tx0,
            "tcp_retransmits": s.get("tcp_retransmits", 0),
            "stack": {k: v for k, v in s.items() if isinstance(v, int) and v},
            "loop_ticks": {k: v - ticks0[k] for k, v in _tick_counts(loop).items()}}


def source_ips(stack, dest):
    """Every address of the stack's interface towards dest, the one it sends from first
    (an `ip=` range or list gives several; see sources.py)."""
    from ..loop import _source_interface
    iface = _source_interface(stack, dest)
    return [str(ip) for ip in iface.ips()] if iface is not None else []
