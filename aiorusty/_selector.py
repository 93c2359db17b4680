"""The selector the loop runs on: epoll for kernel fds, with the user-space stack folded in.

Owns: one tick of waiting. RustySelector wraps a real selector (epoll) and is
handed to asyncio's selector loop as `selector=`, so asyncio's own _run_once
drives everything; the stack adds no second scheduler. Not: transports, routing
(aiorusty.loop), the stack itself (aiorusty.tcp.Stack).

One tick (asyncio's _run_once -> RustySelector.select(timeout)):

  0. Writes transports queued during the last tick go to the stack (one
     tcp_send per transport, coalesced; see transports/stream.py).
  1. stack.poll(now): ONE C call per stack (one stack per loop in production): rx bursts, protocol processing, due timers,
     tx flush of what transports queued in the previous tick. Its socket events
     (a list of (sock, type, flags, arg, arg2) tuples) are queued.
     On a stack made only of taps (whose fd is readable exactly while frames
     wait) the poll is gated: it runs when next_deadline() says the stack has
     work now (queued output, events, due timers) or when this tick's epoll
     finds a device fd readable. A busy-poll tick with nothing to do then
     costs one epoll_wait(0) instead of that plus a tap read() that finds
     nothing, and faster Python no longer means more empty reads per request.
  2. epoll: timeout 0 when events are queued or the last stack activity is less
     than the busy-poll window old (adaptive, below); otherwise sleep on the device
     fds + kernel fds, with asyncio's timeout bounded by the deadline that
     stack.prepare_sleep() gives after arming the devices' wakeups (a shm
     ring is only asked to wake us before a sleep, so neither side of a busy
     link makes a syscall per frame). A busy tick of a stack whose devices
     need no epoll (shm, in-process links) checks the kernel fds only every
     KERNEL_FD_POLL_US.
     (On taps, skipping the timeout-0 epoll on busy ticks was tried and
     measured worse: cheaper empty ticks mean more stack polls per request,
     each one a tap read() that finds nothing - bench/http_loops.py
     --syscalls. An empty shm poll makes no syscall.)
     A sleep shorter than PRECISE_SLEEP_UNDER_S also arms a timerfd at its
     deadline, because epoll counts whole milliseconds (wake_timer.c).
     After a sleep the stack is polled once more, so the frame (or the timer)
     that woke us is handled in this same tick.
  3. Return kernel events, minus device fds, plus ONE pseudo-event whose reader
     Handle dispatches the queued stack events.

Why a pseudo-event rather than calling transports from select(): asyncio's
_process_events appends ready readers to loop._ready *after* the callbacks that
call_soon() queued earlier, and every callback runs inside a Handle whose
failures reach loop.call_exception_handler. Dispatching through one reused
reader Handle keeps exactly that order (connection_made scheduled by
call_soon runs before the first data_received) and that exception path, costs
one Handle run per tick (not per event or per packet), and needs no override of
the loop's private _process_events. Each transport's event is run in the
contextvars context captured when the transport was made, as asyncio does with
its per-fd reader handles; an exception escaping a transport's event handler is
reported like a failing Handle and the remaining events of the batch still run.

Output amid a batch: transports' writes become segments when the stack is
polled next, so when one poll brings requests on many connections, every
answer would wait until the last request was handled, and a peer doing the
same (an aiorusty load generator over shm) would fall into lockstep with us:
each side spinning while the other works on all connections. _dispatch
therefore calls stack.output() (segments and device flush, no receive) once a
batch has run OUTPUT_AFTER_US: the two sides then work in turns on parts of
the connections. shm small requests, 16 connections: 134k -> 241k req/s, the
server's CPU per request 7.3 -> 4.1 us (aiorusty bench).

Writes at once. A kernel socket's send() transmits before it returns; on the
stack a write only queues into the send ring, and its segments are built by the
stack's output step (rusty_tcp_poll_end + device flush, inside every poll, or
rusty_stack_output alone). While _dispatch runs a batch of stack events,
`batching` is True: a write made there (data_received, eof_received, a WRITABLE
flush) is left for the output step that follows the batch (the next poll, or
the OUTPUT_AFTER_US step above), so the replies of one poll leave together and a
tick crosses into C as often as before. A write made anywhere else (a task's
step, a timer, call_soon, a thread-safe callback, connection_made) has no such
step coming before the loop's next tick, and a callback that blocks after
writing (a synchronous call, a thread join, time.sleep) would hold its bytes
back while the peer waits: the transport calls rusty_stack_output once after
handing them over (_StackTransport._handed), stamped with a fresh clock read
(the tick's time may be long past). The price is one C call per such write and
segments no bigger than the write; writelines() hands all its pieces over
before one output. Measured by bench/write_now.py (bench/results/write_now.json):
sending every write at once cost the in-batch servers CPU per request, this
rule costs them nothing and costs the out-of-batch writers the extra output per
write only. The one difference from a kernel socket left: a callback
inside the batch that blocks after writing holds its bytes until it returns
(sending those at once too is the cost the in-batch figures show).

A kernel fd made ready by call_soon_threadsafe or a signal (asyncio's self-pipe)
is registered in the same epoll, so both wake a sleeping loop at once.

Adaptive busy-poll window. busy_poll_us (AIORUSTY_BUSY_POLL_US, default 100)
is the most the loop spins after activity; the window it spins (window_us)
follows the gaps between activities, as KVM's halt-polling sizes its poll by
how long a vCPU stayed halted. When activity arrives after a gap (spin and
sleep included) longer than the window:
  - gap <= busy_poll_us: a longer spin would have caught it without a sleep
    and a wakeup, so the window doubles (from WINDOW_START_US);
  - gap > busy_poll_us: no allowed spin would have; once SHRINK_AFTER_GAPS
    such gaps came in a row, each halves the window (to 0 below
    WINDOW_START_US). Halving at the first one made traffic that mixes short
    and long gaps (one request per connection: handshake, request, close)
    swing between spinning and sleeping, and each sleep's wakeup lengthened
    the next gap: 10% fewer connections per second over shm (30.2k vs 33.2k).
A gap the window covered changes nothing. Server CPU per request below
saturation (bench/busy_poll.py: shm, open-loop generator, 4 connections;
bench/results/busy_poll.json); in brackets the fixed 100 us window this
replaced, measured against the same generator:
  1,000 req/s   18.2 us/req (75), busy-poll 0 20.5; uvloop 20.6
  10,000 req/s   6.2 us/req (32), busy-poll 0 6.2; uvloop 11.6
  50,000 req/s  19.9 us/req (19.9), busy-poll 0 6.0; uvloop 10.9
(At 1,000 req/s a run's CPU moves by a third between runs: 16-32 us here.)
At 50k req/s a request arrives every 20 us, inside the window, so the loop
spins for the latency (p50 17 us against 41 with busy-poll 0); servers that
care about CPU more than latency set AIORUSTY_BUSY_POLL_US=0. A saturated
server has no gaps and no idle ticks either way; an idle one sleeps
(bench/idle_cpu.py: ~0.01% of a core).
"""

import asyncio
import os
import selectors
import time

from ._rusty import ffi, lib

__all__ = ["RustySelector"]

RECV_BUF = 256 * 1024
# A busy tick of a stack whose devices need no epoll (shm, in-process links)
# checks the kernel fds (asyncio's self-pipe, kernel sockets) at most this
# often: an epoll_wait(0) costs about a microsecond, a busy tick not much more,
# so this halves the cost of a tick at a bounded delay for kernel fds.
KERNEL_FD_POLL_US = 50
# A batch of stack events that runs longer than this hands the output queued so
# far to the devices before it goes on (see "Output amid a batch" above).
OUTPUT_AFTER_US = 20
OUTPUT_AFTER_NS = OUTPUT_AFTER_US * 1000
# The adaptive window's first step up from 0, and how many gaps in a row past the
# limit it takes before it shrinks (see "Adaptive busy-poll window").
WINDOW_START_US = 10
SHRINK_AFTER_GAPS = 4
_TCP_READABLE = lib.RUSTY_EV_TCP_READABLE
_LIMIT = lib.RUSTY_EV_LIMIT
_DEVICE = object()          # data of device fds in the inner selector: never returned to asyncio
_WAKE_TIMER = object()      # data of the wake timer's fd: cleared, never returned either
# A sleep shorter than this ends on a timerfd armed at its deadline: epoll_wait counts
# whole milliseconds, so a timer 300 us away would sleep 1 ms (see wake_timer.c).
# Past it the rounding is noise, and the sleep costs no timerfd_settime.
PRECISE_SLEEP_UNDER_S = 0.02


# Drivers whose fd is readable exactly while received frames wait in the kernel
# (a tap's queue). Only for stacks made of these may a busy tick trust epoll
# instead of polling the stack: AF_PACKET v3 signals per retired block, shm and
# the in-process devices have frames without a readable fd.
_FD_DRIVEN = ("tap",)


def _fd_driven(stack):
    devices = getattr(stack, "devices", None)
    if not devices:
        return False
    for dev in devices:
        info = dev.info()
        if info["driver"] not in _FD_DRIVEN:
            return False
        if any(dev.fileno(q) < 0 for q in range(max(1, info["queues"]))):
            return False
    return True


class RustySelector(selectors.BaseSelector):
    """A selector that polls a Stack each tick and sleeps in epoll on its device fds."""

    def __init__(self, stacks, busy_poll_us=100, inner=None, close_stacks=True):
        self.stacks = list(stacks)      # usually one; tests drive both ends of a cable
        self.busy_poll_us = busy_poll_us    # the most a window may be
        self.window_us = busy_poll_us       # the spin after activity now (adaptive)
        self._inner = inner if inner is not None else selectors.DefaultSelector()
        self._close_stacks = close_stacks
        self._pending = []              # [(transports of a stack, its events, the stack)] not dispatched yet
        self._last_activity = 0         # now_us of the last poll that returned events
        self._last_epoll = 0            # now_us of the last epoll of the kernel fds
        self._active = False            # output queued since the last tick (note_activity)
        self.batching = False           # True while _dispatch runs stack events: see "Writes at once"
        self.now_us = time.monotonic_ns() // 1000    # the time of this tick's stack poll
        self._device_fds = set()
        self.transports = {id(st): {} for st in self.stacks}    # stack -> {socket handle: transport}
        self._loop = None
        self._key = None
        self.flush = []                 # transports with writes queued this tick
        self.recv_buf = ffi.new("uint8_t[]", RECV_BUF)      # TCP reads of this loop land here first
        self.recv_chars = ffi.cast("char *", self.recv_buf)  # the same, for ffi.unpack -> bytes in one call
        self.ticks = 0                  # stack polls done (for tests and stats)
        self.event_ticks = 0            # of which returned socket events (the rest found nothing)
        self.sleeps = 0                 # epoll waits with a non-zero timeout
        self.window_changes = [0, 0]    # times the window grew, shrank
        self._long_gaps = 0             # gaps in a row past busy_poll_us
        self._wake_fd = lib.rusty_wake_timer_open()
        if self._wake_fd < 0:
            raise OSError(-self._wake_fd, f"timerfd_create: {os.strerror(-self._wake_fd)}")
        self._inner.register(self._wake_fd, selectors.EVENT_READ, _WAKE_TIMER)
        self.refresh_fds()

    # -- wiring ---------------------------------------------------------------

    def attach(self, loop):
        """Bind to the loop that owns this selector (creates the dispatch Handle)."""
        self._loop = loop
        handle = asyncio.Handle(self._dispatch, (), loop)
        self._key = selectors.SelectorKey(self, -1, selectors.EVENT_READ, (handle, None))

    def refresh_fds(self):
        """(Re)register the stack's device fds for sleeping (after add_interface)."""
        fds = {fd for st in self.stacks for fd in st.fds() if fd is not None and fd >= 0}
        for fd in self._device_fds - fds:
            self._inner.unregister(fd)
        for fd in fds - self._device_fds:
            self._inner.register(fd, selectors.EVENT_READ, _DEVICE)
        self._device_fds = fds
        self._gated = bool(self.stacks) and all(_fd_driven(st) for st in self.stacks)

    def fileno(self):
        return -1                       # the pseudo-event's fileobj; never polled

    def note_activity(self):
        """A transport queued output: keep polling for the reply (busy-poll window).

        Only a flag: the next tick stamps it with the time it reads anyway, so a
        write costs no clock read."""
        self._active = True

    def handed(self, stack):
        """The stack took bytes (or a FIN) from a transport or a stack socket: keep
        polling for the answer and, outside the batch of stack events, send them now
        (see "Writes at once" above)."""
        self._active = True
        if not self.batching:
            # The time now: the tick's may be long past (a callback before this one blocked).
            stack.output(time.monotonic_ns() // 1000)

    # -- one tick ---------------------------------------------------------------

    def _poll(self, now):
        for st in self.stacks:
            events = st.poll(now)
            if events:
                self._pending.append((self.transports[id(st)], events, st))
                gap = now - self._last_activity
                if gap > self.window_us:
                    self._adapt(gap)
                self._last_activity = now
                self.event_ticks += 1

    def _adapt(self, gap):
        """Size the busy-poll window by a gap between activities it did not cover."""
        if gap <= self.busy_poll_us:
            self._long_gaps = 0
            self.window_us = min(self.busy_poll_us, max(WINDOW_START_US, self.window_us * 2))
            self.window_changes[0] += 1
            return
        self._long_gaps += 1
        if self.window_us and self._long_gaps >= SHRINK_AFTER_GAPS:
            half = self.window_us // 2
            self.window_us = half if half >= WINDOW_START_US else 0
            self.window_changes[1] += 1

    def _due(self, now):
        """True when a stack has work without a frame arriving: output, events, timers."""
        for st in self.stacks:
            d = st.next_deadline(now)
            if d is not None and d <= now:
                return True
        return False

    def _sleep_deadline(self, now):
        """The earliest deadline of the stacks, their wakeups armed for the sleep."""
        best = None
        for st in self.stacks:
            d = st.prepare_sleep(now)
            if d is not None and (best is None or d < best):
                best = d
        return best

    def _flush(self):
        """Hand this tick's queued writes to the stack, right before it transmits."""
        queued, self.flush = self.flush, []
        for t in queued:
            try:
                t._context.run(t._write_ready)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler({
                    "message": f"Exception flushing writes of {t!r}",
                    "exception": exc,
                    "transport": t,
                })

    def select(self, timeout=None):
        # One clock read serves the flush and the poll; transports pass it to the
        # stack as their now_us (self.now_us) instead of reading the clock per call.
        self.now_us = now = time.monotonic_ns() // 1000
        if self.flush:
            self._flush()
            if self._loop._ready:
                timeout = 0             # the flush scheduled callbacks (resume_writing, connection_lost)
        if self._active:
            self._active = False
            self._last_activity = now
        if not self._gated or self._due(now):
            self._poll(now)
            self.ticks += 1
        if self._pending or now - self._last_activity < self.window_us:
            timeout = 0
        elif timeout is None or timeout > 0:
            deadline = self._sleep_deadline(now)
            if deadline is not None:
                wait = max(0, deadline - now) / 1e6
                if timeout is None or wait < timeout:
                    timeout = wait
            if timeout is not None and 0 < timeout < PRECISE_SLEEP_UNDER_S:
                lib.rusty_wake_timer_arm(self._wake_fd, now + max(1, int(timeout * 1e6)))
        if timeout == 0 and not self._gated and now - self._last_epoll < KERNEL_FD_POLL_US:
            ready = []                  # busy tick of a stack without fds to watch: see KERNEL_FD_POLL_US
        else:
            ready = self._inner.select(timeout)
            self._last_epoll = now
        if timeout is None or timeout > 0:
            # Woken by a device fd, a kernel fd or the stack's deadline: run the
            # stack now so what woke us is handled in this tick.
            self.sleeps += 1
            self.now_us = now = time.monotonic_ns() // 1000
            self._poll(now)
            self.ticks += 1
        elif self._gated and ready and any(kv[0].data is _DEVICE for kv in ready):
            self._poll(now)             # frames are waiting: take them in this tick
            self.ticks += 1
        if ready:
            ready = [kv for kv in ready if kv[0].data is not _DEVICE and not self._wake_timer_fired(kv)]
        if self._pending and self._key is not None:
            ready.append((self._key, selectors.EVENT_READ))
        return ready

    def _wake_timer_fired(self, key_events):
        """True (and the timer cleared) when an epoll result is the wake timer's."""
        if key_events[0].data is not _WAKE_TIMER:
            return False
        try:
            os.read(self._wake_fd, 8)
        except BlockingIOError:
            pass
        return True

    def _dispatch(self):
        """Run queued stack events on their transports (one Handle run per tick)."""
        self.batching = True
        try:
            self._dispatch_batches()
        finally:
            self.batching = False

    def _dispatch_batches(self):
        batches, self._pending = self._pending, []
        clock = time.monotonic_ns
        for b, (transports, events, stack) in enumerate(batches):
            get = transports.get
            due = clock() + OUTPUT_AFTER_NS
            for i, (sock, typ, flags, arg, arg2) in enumerate(events):
                if i:
                    now_ns = clock()
                    if now_ns >= due:
                        stack.output(now_ns // 1000)
                        due = now_ns + OUTPUT_AFTER_NS
                t = get(sock)
                if t is None:
                    if typ == _LIMIT and not sock:
                        stack.report_limit(arg)
                    continue            # socket closed since the event was queued
                try:
                    if typ == _TCP_READABLE:
                        t._context.run(t._reader, t)      # most events: one frame less
                    else:
                        t._context.run(t._stack_event, typ, flags, arg, arg2)
                except (SystemExit, KeyboardInterrupt):
                    rest = [(transports, events[i + 1:], stack)] + batches[b + 1:]
                    self._pending[:0] = [x for x in rest if x[1]]
                    raise
                except BaseException as exc:
                    self._loop.call_exception_handler({
                        "message": f"Exception in callback {t!r} on stack event {typ}",
                        "exception": exc,
                        "transport": t,
                        "protocol": getattr(t, "_protocol", None),
                    })

    # -- the selectors.BaseSelector contract, delegated to epoll -----------------

    def register(self, fileobj, events, data=None):
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj):
        return self._inner.unregister(fileobj)

    def modify(self, fileobj, events, data=None):
        return self._inner.modify(fileobj, events, data)

    def get_key(self, fileobj):
        return self._inner.get_key(fileobj)

    def get_map(self):
        return self._inner.get_map()

    def close(self):
        self._pending = []
        self.flush = []
        self.transports.clear()
        self._inner.close()
        if self._wake_fd >= 0:
            os.close(self._wake_fd)
            self._wake_fd = -1
        if self._close_stacks:
            for st in self.stacks:
                st.close()
        self._key = None
        self._loop = None
