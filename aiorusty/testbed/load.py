"""`aiorusty load`: a wrk-like HTTP load generator on the user-space stack (or the kernel).

Owns: connections as asyncio Protocols (so the same code runs on aiorusty,
asyncio and uvloop), closed-loop load (each connection keeps --pipeline
requests outstanding) and open-loop load (--rate: each connection follows a
fixed schedule and latency is measured from the *intended* send time, so a
stalled server is not hidden by a client that waits for it - the coordinated
omission correction of wrk2), --new-connection (one request per connection),
weighted URL lists, response parsing (status line, Content-Length, HEAD), the
error kinds, --hold (open -c connections, keep them idle, then one request on
each), the live progress line and the result dict of one worker.
Bounded always: by time (-d; with --hold, -d bounds the opening and --hold the
idle time) and, when given, by count (-n).
Not: merging workers and printing the report (report.py), the loop (loops.py),
source addresses and ports (sources.py), pacing of opens (pace.py).
"""

import asyncio
import collections
import errno
import os
import random
import sys
import time
import urllib.parse

from . import loops
from .hist import Histogram
from .http import _nodelay
from .pace import TokenBucket
from .sources import Sources
from ..transports.zerocopy import ViewProtocol

HEAD_WINDOW = 4096                      # bytes copied out of a view to find a response header
HEAD_CACHE = 256                        # response headers remembered parsed (a server repeats
                                        # its headers; Date changes once a second)
MAX_HEAD = 65536                        # a longer response header is a bad_response
VIEW_BODY = 64 * 1024                   # a body this big switches a stack connection to views
DEFAULT_IFACE = "shm:aiorusty,ip=10.77.0.2/24"
DEFAULT_URL = "http://10.77.0.1:8080/64"
CONNECT_ERRORS = ("connect_refused", "connect_timeout", "connect_error")
ERROR_KINDS = CONNECT_ERRORS + ("reset", "closed", "timeout", "bad_status", "short_body", "bad_response")


_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_headers(headers):
    """'Name: value' strings (wrk's -H) as request header lines; a bad one is a ValueError
    naming it. RFC 9110 5.1: a name is a token; a value holds no CR, LF or NUL."""
    lines, host = [], None
    for h in headers or ():
        name, sep, value = h.partition(":")
        name, value = name.strip(), value.strip()
        raw = name.encode("latin-1", "replace")
        if not sep or not raw or not all(c in _TOKEN for c in raw):
            raise ValueError(f"header {h!r}: expected 'Name: value' with a name of letters, digits or "
                             "!#$%&'*+-.^_`|~ (RFC 9110 5.1)")
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {h!r}: a value may not hold CR, LF or NUL")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header {h!r}: a value must be ISO-8859-1 (RFC 9110 5.5)") from None
        if name.lower() == "host":
            host = value                # replaces the one made from the URL, as wrk's -H does
        else:
            lines.append(f"{name}: {value}\r\n")
    return "".join(lines), host


def parse_urls(url=None, url_list=None, headers=()):
    """[(weight, host, port, request bytes, path)] from one URL or a 'weight url' file; headers
    are -H's 'Name: value' strings, sent with every request."""
    extra, host_override = parse_headers(headers)
    entries = []
    if url_list:
        with open(url_list) as f:
            for n, line in enumerate(f, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split()
                if len(parts) == 1:
                    w, u = 1.0, parts[0]
                elif len(parts) == 2:
                    w, u = float(parts[0]), parts[1]
                else:
                    raise ValueError(f"{url_list}:{n}: expected 'WEIGHT URL', got {line!r}")
                if w < 0:
                    raise ValueError(f"{url_list}:{n}: negative weight")
                entries.append((w, u))
    else:
        entries.append((1.0, url or DEFAULT_URL))
    out = []
    for w, u in entries:
        p = urllib.parse.urlsplit(u)
        if p.scheme != "http" or not p.hostname:
            raise ValueError(f"URL {u!r}: expected http://HOST[:PORT]/PATH (https is not supported)")
        port = p.port or 80
        path = (p.path or "/") + (f"?{p.query}" if p.query else "")
        hosthdr = host_override or (p.hostname if port == 80 else f"{p.hostname}:{port}")
        # The request wrk sends (no User-Agent): the same work for the server either way.
        req = f"GET {path} HTTP/1.1\r\nHost: {hosthdr}\r\n{extra}\r\n".encode("latin-1")
        out.append((w, p.hostname, port, req, path))
    targets = {(h, port) for _, h, port, _, _ in out}
    if len(targets) != 1:
        raise ValueError(f"all URLs must name the same host and port (got {sorted(targets)})")
    if not any(w > 0 for w, *_ in out):
        raise ValueError("every URL has weight 0")
    return out


def _parse_head(head):
    """(status, Content-Length or 0) of a response header without its blank line; None if
    it is not HTTP/1.x."""
    if head[:7] != b"HTTP/1." or not head[9:12].isdigit():
        return None
    i = head.find(b"Content-Length: ")
    skip = 16
    if i < 0:
        i = head.lower().find(b"content-length:")
        skip = 15
    if i < 0:
        return int(head[9:12]), 0
    k = head.find(b"\r\n", i)
    value = head[i + skip:k if k >= 0 else len(head)].strip()
    if not value.isdigit():
        return None
    return int(head[9:12]), int(value)


def _window(view, pos, n, size):
    """bytes of view[pos:pos+size] (the whole view without slicing it when it fits)."""
    return view.tobytes() if pos == 0 and n <= size else view[pos:pos + size].tobytes()


class _Views(ViewProtocol):
    """What a connection's transport calls once its responses are big: the stack's
    receive ring as views (bodies counted without a copy), forwarded to the _Conn."""

    def __init__(self, conn):
        self.conn = conn

    def view_received(self, view):
        self.conn._feed(view, True)

    def eof_received(self):
        return self.conn.eof_received()

    def connection_lost(self, exc):
        self.conn.connection_lost(exc)


class _Conn(asyncio.Protocol):
    """One client connection: writes requests, parses responses, reports each completion.

    Responses arrive as bytes until one announces a body of VIEW_BODY bytes or
    more; on the user-space stack the connection then reads views of the
    receive ring instead (_Views): a view costs more Python per read than a
    small bytes object, and saves a copy of every byte of a big body."""

    __slots__ = ("gen", "transport", "sent", "rest", "remaining", "status", "resp_bytes", "done",
                 "next_t", "timer", "last_io", "lost", "is_new", "viewing")

    def __init__(self, gen):
        self.gen = gen
        self.transport = None
        self.sent = collections.deque()     # (stamp_ns, path_index, is_head)
        self.rest = b""
        self.remaining = -1                 # body bytes still expected; -1: waiting for a header
        self.status = 0
        self.resp_bytes = 0
        self.done = gen.loop.create_future()
        self.next_t = 0
        self.timer = None
        self.last_io = gen.epoch            # the once-a-second tick's count at the last I/O
        self.lost = False
        self.viewing = False

    def connection_made(self, transport):
        self.transport = transport
        _nodelay(transport)

    def send(self, stamps):
        gen = self.gen
        if gen.single and len(stamps) == 1:        # the common case, without a list and a join
            self.sent.append((stamps[0], 0))
            self.transport.write(gen.requests[0])
            self.last_io = gen.epoch
            return
        reqs = []
        for stamp in stamps:
            i = gen.pick()
            self.sent.append((stamp, i))
            reqs.append(gen.requests[i])
        self.transport.write(reqs[0] if len(reqs) == 1 else b"".join(reqs))
        self.last_io = gen.epoch

    def _feed(self, buf, is_view=False):
        """Parse responses from bytes, or from a view of the TCP receive ring valid during
        this call: bodies are only counted, so a big body costs no copy; headers are copied
        out in windows (HEAD_WINDOW bytes, MAX_HEAD for a long header) to be parsed."""
        gen = self.gen
        self.last_io = gen.epoch
        pos, n = 0, len(buf)
        while pos < n:
            if self.remaining > 0:
                take = n - pos
                if take >= self.remaining:
                    pos += self.remaining
                    self.resp_bytes += self.remaining
                    self.remaining = 0
                else:
                    self.remaining -= take
                    self.resp_bytes += take
                    return
            else:
                if is_view:
                    data = _window(buf, pos, n, HEAD_WINDOW)
                    if n - pos > len(data) and b"\r\n\r\n" not in data:
                        data = _window(buf, pos, n, MAX_HEAD)       # a long header: look further
                    off = 0
                    more = n - pos > len(data)          # bytes of this read beyond the window
                else:
                    data, off, more = buf, pos, False
                shift = len(self.rest)
                if shift:
                    data = self.rest + data[off:]
                    off = 0
                    self.rest = b""
                end = data.find(b"\r\n\r\n", off)
                if end < 0:
                    self.rest = data[off:]
                    if more or len(self.rest) > MAX_HEAD:
                        gen.error("bad_response")
                        self.transport.abort()
                    return
                if not self.sent:
                    gen.error("bad_response")       # a response nobody asked for
                    self.transport.abort()
                    return
                head = data[off:end]
                parsed = gen.heads.get(head)
                if parsed is None:
                    parsed = _parse_head(head)
                    if parsed is None:
                        gen.error("bad_response")
                        self.transport.abort()
                        return
                    if len(gen.heads) >= HEAD_CACHE:
                        gen.heads.clear()
                    gen.heads[head] = parsed
                self.status, length = parsed
                if length and (gen.is_head[self.sent[0][1]] or self.status in (204, 304)):
                    length = 0
                self.resp_bytes = end + 4 - off
                self.remaining = length
                if length >= VIEW_BODY and not self.viewing and gen.stack is not None:
                    self.viewing = True
                    self.transport.set_protocol(_Views(self))
                pos += end + 4 - off - shift
                if length:
                    continue
            # one response complete
            stamp, i = self.sent.popleft()
            self.remaining = -1
            gen.complete(self, stamp, i, self.status, self.resp_bytes)
        # (the loop exits with the buffer consumed)

    data_received = _feed               # bytes: a new object per read (is_view False)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.lost = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        gen = self.gen
        if self.sent and not gen.closing_all:
            if isinstance(exc, ConnectionResetError):
                gen.error("reset")
            elif self.remaining > 0 or self.rest:
                gen.error("short_body")
            elif exc is not None:
                gen.error("reset" if isinstance(exc, OSError) else "closed")
            else:
                gen.error("closed")
            gen.unanswered += len(self.sent)
        if not self.done.done():
            self.done.set_result(exc)


class Generator:
    """The load of one worker: connection slots, budget, schedule, counters."""

    def __init__(self, loop, stack, opts, urls, worker=0, workers=1):
        self.loop = loop
        self.stack = stack
        self.opts = opts
        self.worker, self.workers = worker, workers
        self.urls = urls
        self.requests = [u[3] for u in urls]
        self.paths = [u[4] for u in urls]
        self.is_head = [False] * len(urls)
        self.host, self.port = urls[0][1], urls[0][2]
        weights = [u[0] for u in urls]
        self._rng = random.Random(opts.seed + worker)
        total = sum(weights)
        self._cum = [sum(weights[:i + 1]) / total for i in range(len(weights))]
        self.single = len(urls) == 1
        self.hist = Histogram()
        self.completed = 0
        self.bytes = 0
        self.statuses = collections.Counter()
        self.per_path = collections.Counter()
        self.errors = collections.Counter()
        self.errnos = collections.Counter()           # connect_error by errno name
        self.unanswered = 0
        self.connects = 0
        self.budget = opts.requests // workers + (1 if worker < opts.requests % workers else 0) \
            if opts.requests else -1
        self.stopping = False
        self.closing_all = False
        self.conns = set()
        self.connecting = {}                # slot task -> when its connect started
        self.connect_expired = set()        # slot tasks the tick cancelled for connect_timeout
        self.pipeline = max(1, opts.pipeline)
        self.rate = opts.rate / workers if opts.rate else 0.0
        self.sources = Sources((), self.host, self.port)    # run() gives a stack's addresses
        self.pace = None                    # TokenBucket of --connect-rate
        self.open_peak = 0                  # the most connections open at once
        self.progress = []                  # once a second: [s, requests, opening, open, connect errors]
        self._first = self._last = None
        self.epoch = 0                      # once-a-second ticks so far (connections' last_io)
        self.heads = {}                     # response header bytes -> (status, length)
        self.new_connection = bool(opts.new_connection)

    # -- requests ----------------------------------------------------------------------------

    def pick(self):
        if self.single:
            return 0
        r = self._rng.random()
        for i, c in enumerate(self._cum):
            if r < c:
                return i
        return len(self._cum) - 1

    def take(self, k=1):
        """How many of k requests may still be sent (budget and time)."""
        if self.stopping:
            return 0
        if self.budget < 0:
            return k
        k = min(k, self.budget)
        self.budget -= k
        if self.budget == 0:
            self.stopping = True
        return k

    def error(self, kind):
        self.errors[kind] += 1

    def complete(self, conn, stamp, i, status, nbytes):
        now = time.perf_counter_ns()
        self.hist.record(now - stamp)
        self.completed += 1
        self.bytes += nbytes
        self.statuses[status] += 1
        if not self.single:
            self.per_path[i] += 1
        if status >= 400:
            self.error("bad_status")
        self._last = now
        if self.new_connection:
            conn.transport.close()
        elif self.rate:
            self._pump_rate(conn)
        elif self.budget < 0 and not self.stopping:     # take(), for the unbounded run
            conn.send((now,))
        elif self.take():
            conn.send((now,))
        elif not conn.sent:
            conn.transport.close()

    # -- connection slots ----------------------------------------------------------------------

    async def _connect(self):
        if self.pace is not None:
            await self.pace.take()
        # The once-a-second tick cancels a connect older than the timeout: no
        # timer or timeout context per connection (this runs once per request
        # with --new-connection).
        task = asyncio.current_task()
        self.connecting[task] = time.monotonic()
        sources = self.sources
        try:
            while True:
                local = sources.next()
                try:
                    if local is None:
                        _, conn = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port)
                    else:
                        _, conn = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port,
                                                                    local_addr=local)
                    break
                except OSError as exc:
                    if not sources.exhausted(local, exc):   # else: the next address, at once
                        raise
        except asyncio.CancelledError:
            if task not in self.connect_expired:
                raise
            self.connect_expired.discard(task)
            if hasattr(task, "uncancel"):
                task.uncancel()
            self.error("connect_timeout")
            return None
        except ConnectionRefusedError:
            self.error("connect_refused")
            return None
        except OSError as exc:
            if exc.errno == 98:             # EADDRINUSE: a picked port still in TIME-WAIT
                return None
            self.error("connect_error")
            self.errnos[errno.errorcode.get(exc.errno, str(exc.errno))] += 1
            return None
        finally:
            self.connecting.pop(task, None)
        sources.connected(local)
        self.connects += 1
        self.conns.add(conn)
        if len(self.conns) > self.open_peak:
            self.open_peak = len(self.conns)
        return conn

    async def _slot(self, i):
        if self.rate:
            # Connections start their schedules staggered across one interval.
            interval = self.opts.connections / self.workers / self.rate * 1e9
            start = self.start_ns + int(i * interval / max(1, self.opts.connections // self.workers))
        while not self.stopping:
            if self.opts.new_connection:
                if self.rate:
                    now = time.perf_counter_ns()
                    if start > now:
                        await asyncio.sleep((start - now) / 1e9)
                    if self.stopping:
                        return
                    stamp, start = start, start + int(interval)
                if not self.take():
                    return
                stamp = stamp if self.rate else time.perf_counter_ns()
                conn = await self._connect()
                if conn is None:
                    if self.budget >= 0:
                        self.budget += 1
                    await asyncio.sleep(0.01)
                    continue
                conn.send((stamp,))
                await conn.done
                self.conns.discard(conn)
                continue
            conn = await self._connect()
            if conn is None:
                await asyncio.sleep(0.01)
                continue
            if self.rate:
                conn.next_t = max(start, time.perf_counter_ns())
                self._pump_rate(conn)
            else:
                k = self.take(self.pipeline)
                if not k:
                    conn.transport.close()
                else:
                    now = time.perf_counter_ns()
                    conn.send((now,) * k)
            await conn.done
            self.conns.discard(conn)
            if self.rate:
                start = conn.next_t

    def _pump_rate(self, conn):
        if conn.lost:
            return
        now = time.perf_counter_ns()
        stamps = []
        interval = int(self.opts.connections / self.workers / self.rate * 1e9) if self.rate else 0
        while len(conn.sent) + len(stamps) < self.pipeline and conn.next_t <= now:
            if not self.take():
                break
            stamps.append(conn.next_t)
            conn.next_t += interval
        if stamps:
            conn.send(stamps)
        if self.stopping:
            if not conn.sent:
                conn.transport.close()
        elif len(conn.sent) < self.pipeline and conn.timer is None:
            conn.timer = self.loop.call_later((conn.next_t - now) / 1e9, self._rate_timer, conn)

    def _rate_timer(self, conn):
        conn.timer = None
        self._pump_rate(conn)

    # -- the run ---------------------------------------------------------------------------------

    async def run(self, ready=None):
        opts = self.opts
        n_conns = opts.connections // self.workers + (1 if self.worker < opts.connections % self.workers else 0)
        if self.stack is not None:
            self.sources = Sources(loops.source_ips(self.stack, self.host), self.host, self.port, self.worker,
                                   self.workers, steer=opts.steer, ports=opts.source_ports)
        if opts.connect_rate:
            self.pace = TokenBucket(self.loop, opts.connect_rate / self.workers)
        if ready is not None:
            ready()
        counters = loops.run_counters(self.loop, self.stack)
        self.start_ns = time.perf_counter_ns()
        t0 = time.monotonic()
        ticker = asyncio.ensure_future(self._tick(t0))
        hold = None
        pending = ()
        if opts.hold:
            hold = await self._hold(max(1, n_conns), t0)
        else:
            stop_timer = self.loop.call_later(opts.duration, self._stop)
            slots = [asyncio.ensure_future(self._slot(i)) for i in range(max(1, n_conns))]
            done, pending = await asyncio.wait(slots, timeout=opts.duration + opts.timeout + 1)
            stop_timer.cancel()
        self.stopping = True
        if self.pace is not None:
            self.pace.close()
        # Grace for responses in flight, then close everything.
        grace_end = time.monotonic() + min(2.0, opts.timeout)
        while any(c.sent for c in self.conns) and time.monotonic() < grace_end:
            await asyncio.sleep(0.01)
        self.closing_all = True
        for c in list(self.conns):
            if c.sent:
                self.unanswered += len(c.sent)
            if c.transport is not None and not c.transport.is_closing():
                c.transport.close()
        for s in pending:
            s.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        await asyncio.sleep(0.05)           # let the FINs go out
        elapsed = ((self._last or time.perf_counter_ns()) - self.start_ns) / 1e9
        if self.rate or opts.requests == 0:
            elapsed = max(elapsed, min(opts.duration, time.monotonic() - t0))
        out = {
            "worker": self.worker, "pid": os.getpid(), "core": sorted(os.sched_getaffinity(0)),
            "duration_s": elapsed, "requests": self.completed, "bytes": self.bytes,
            "connections": self.connects, "unanswered": self.unanswered,
            "connections_open_peak": self.open_peak,
            "connect_failed": sum(self.errors[k] for k in CONNECT_ERRORS),
            "source_addresses": sorted(self.sources.used, key=lambda ip: tuple(map(int, ip.split(".")))),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": {k: self.errors[k] for k in ERROR_KINDS if self.errors[k]},
            "connect_errnos": dict(self.errnos),
            "progress": self.progress,
            "histogram": self.hist.to_json(),
        }
        if hold is not None:
            out["hold"] = hold
        if not self.single:
            out["per_url"] = {self.paths[i]: n for i, n in sorted(self.per_path.items())}
        out.update(loops.run_report(self.loop, self.stack, counters))
        return out

    async def _hold(self, n_conns, t0):
        """--hold: open n_conns connections (within -d seconds, at --connect-rate), keep them
        idle for --hold seconds, then send one request on each that is still open (at
        --connect-rate too) and wait (up to --timeout) for the answers. What happened, for
        the report."""
        opts = self.opts
        slots = [asyncio.ensure_future(self._hold_slot()) for _ in range(n_conns)]
        done, pending = await asyncio.wait(slots, timeout=opts.duration)
        for s in pending:
            s.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        open_s = time.monotonic() - t0
        established = len(self.conns)
        await asyncio.sleep(opts.hold)
        held = [c for c in self.conns if not c.lost]
        self.stopping = True            # complete() closes each connection after its answer
        # The requests go out at --connect-rate too: all of them in one instant would
        # measure how the two stacks ride out a synchronized burst, not the server.
        for c in held:
            if self.pace is not None:
                await self.pace.take()
            if not c.lost:
                c.send((time.perf_counter_ns(),))
        deadline = time.monotonic() + opts.timeout
        while self.completed + self.unanswered < len(held) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return {"connections": n_conns, "established": established, "open_s": round(open_s, 3),
                "hold_s": opts.hold, "held": len(held), "answered": self.completed}

    async def _hold_slot(self):
        """One connection of --hold, opened again after a failed attempt until the opening ends."""
        while True:
            conn = await self._connect()
            if conn is not None:
                return conn
            await asyncio.sleep(0.01)

    def _stop(self):
        self.stopping = True
        for c in list(self.conns):
            if not c.sent and c.transport is not None and not c.transport.is_closing():
                c.transport.close()

    async def _tick(self, t0):
        """Once a second: time out silent connections, print progress (worker 0 of a run)."""
        last_n, last_b = 0, 0
        show = self.opts.progress_enabled and self.worker == 0
        while True:
            await asyncio.sleep(1.0)
            self.epoch += 1
            now = time.monotonic()
            for task, t in list(self.connecting.items()):
                if now - t > self.opts.timeout and task not in self.connect_expired:
                    self.connect_expired.add(task)
                    task.cancel()
            for c in list(self.conns):
                if c.sent and self.epoch - c.last_io > self.opts.timeout and not c.lost:
                    self.error("timeout")
                    self.unanswered += len(c.sent)
                    c.sent.clear()
                    c.transport.abort()
            failed = sum(self.errors[k] for k in CONNECT_ERRORS)
            self.progress.append([round(now - t0, 1), self.completed, len(self.connecting), len(self.conns), failed])
            if show:
                n, b = self.completed, self.bytes
                errs = sum(self.errors.values())
                p99 = self.hist.percentile(99) / 1e3
                who = f"worker 0 of {self.workers}: " if self.workers > 1 else ""
                sys.stderr.write(f"\r[{now - t0:5.1f}s] {who}{n - last_n:>9,} req/s  "
                                 f"{(b - last_b) * 8 / 1e9:6.2f} Gbps  p99 {p99:8.0f} us  "
                                 f"conns {len(self.conns):>6,} open {len(self.connecting):>5,} opening "
                                 f"{failed:,} failed  errors {errs}   ")
                sys.stderr.flush()
                last_n, last_b = n, b


def load_worker(index, count, ready, opts):
    """One load worker (see workers.run_workers): its result dict."""
    urls = parse_urls(opts.url, opts.url_list, opts.header)
    kind = opts.loop
    iface = None
    stack_opts = {}
    if kind == "aiorusty":
        iface = loops.worker_interface(opts.iface, index, count)
        # The stack's defaults hold any -c: its tables grow with the connections and an
        # idle connection holds no buffer.
        if opts.new_connection:
            # One request per connection leaves a TIME-WAIT per connection on our
            # side (we close first): a short MSL on a link that cannot hold old
            # segments anyway (shm, a local tap). Every port above 1023 is
            # ephemeral: at 2*MSL = 0.5 s the stack's default 16k ports run out
            # at 32k connections/s.
            stack_opts.update(tcp_msl_us=opts.msl_ms * 1000, ephemeral_lo=1024, ephemeral_hi=65535)
        if opts.source_ports:
            stack_opts.update(ephemeral_lo=opts.source_ports[0], ephemeral_hi=opts.source_ports[1])
    loop, stack = loops.new_loop(kind, iface, busy_poll_us=opts.busy_poll_us, **stack_opts)
    try:
        asyncio.set_event_loop(loop)
        gen = Generator(loop, stack, opts, urls, index, count)
        return loop.run_until_complete(gen.run(ready))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        if stack is not None:
            stack.close()
