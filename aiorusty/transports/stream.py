"""StackStreamTransport: asyncio.Transport over a stack TCP connection.

Owns: the asyncio Transport contract for TCP on the user-space stack - reading
(Protocol.data_received, or BufferedProtocol.get_buffer/buffer_updated with one
copy from the stack's receive buffer into the protocol's buffer), eof_received
honoured as asyncio does, pause/resume_reading, writing with write-buffer
limits (strictly alternating pause_writing/resume_writing), write_eof (FIN
after queued data), close (flush, then FIN), abort, and the socket-like
get_extra_info('socket') whose TCP_NODELAY/SO_KEEPALIVE act on the connection.
Not: connecting/accepting (aiorusty.server), the TCP state machine (C).

Write path: a write() into an empty buffer goes to the stack's send ring at
once (as asyncio's send() would); rusty_tcp_send only queues, and segments
are built by the stack's output step. When they are built is the rule of
RustySelector ("Writes at once"):
  - inside the selector's batch of stack events (data_received,
    eof_received, buffer_updated, ...), at the output step that follows the
    batch, so the writes of one tick leave together, as full segments;
  - anywhere else (a task, a timer, call_soon, a thread-safe callback,
    connection_made), at once: the write calls rusty_stack_output, so a
    caller that blocks after writing does not hold its bytes back. The
    same holds for write_eof() and for the FIN close() sends after a write.
    writelines() hands every piece to the stack first and outputs once.
What the stack's send buffer cannot take, and writes behind it, queue here in
order, count in get_write_buffer_size() and are handed over once per tick,
coalesced, just before the selector polls the stack (RustySelector.flush), or
on the next WRITABLE event.

Call chains: RustySelector._dispatch -> _reader (for a READABLE event; the
others go through _stack_event) -> rusty_tcp_recv (C) ->
protocol.data_received;  write -> rusty_tcp_send (C) [-> rusty_stack_output (C)
outside the batch] | (queue) -> RustySelector.select -> _write_ready ->
rusty_tcp_send (C).
Errors from protocol callbacks and the stack take asyncio's one path:
_fatal_error -> _force_close -> _call_connection_lost.
"""

import collections
import errno
import os
import socket
import sys
import time
import weakref
from asyncio import BufferedProtocol, Transport, constants

from .._errors import check
from .._payload import StaticPayload
from .._rusty import ffi, lib
from ._base import _StackTransport, log, set_result_unless_cancelled
from .zerocopy import ViewProtocol

__all__ = ["StackStreamTransport"]

_EV_READABLE = lib.RUSTY_EV_TCP_READABLE
_EV_WRITABLE = lib.RUSTY_EV_TCP_WRITABLE
_EV_EOF = lib.RUSTY_EV_TCP_EOF
_EV_CLOSED = lib.RUSTY_EV_TCP_CLOSED
_COALESCE = 256 * 1024        # at most this much is joined into one tcp_send
_ATTACH_TRANSPORT = sys.version_info >= (3, 13)     # Server._attach(transport) vs _attach()
_EAGAIN = -errno.EAGAIN
# Looked up once: these run once or twice per request.
_tcp_recv = lib.rusty_tcp_recv
_tcp_send = lib.rusty_tcp_send
_output = lib.rusty_stack_output
_clock = time.monotonic_ns
_SHUT_WR = socket.SHUT_WR
_unpack = ffi.unpack


def _send_error(ret):
    """The OSError Stack.tcp_send raises for a negative return (see aiorusty._errors.check)."""
    return OSError(-ret, f"tcp send: {os.strerror(-ret)}")


def _keep_alive(owner):
    """weakref.finalize callback: holding `owner` until then was its job."""


def _recv_into(stack, handle, buf):
    """Bytes copied straight from the stack into buf; 0 at EOF; None when nothing is readable."""
    ret = lib.rusty_tcp_recv(stack._live(), handle, ffi.from_buffer(buf, require_writable=True), len(buf))
    if ret == -errno.EAGAIN:
        return None
    return check(ret, "tcp recv")


def _not_started(transport):
    """The reader of a transport whose connection_made has not run yet: reads nothing."""


class StackStreamTransport(_StackTransport, Transport):
    """A TCP connection on the user-space stack (made by create_connection or a Server)."""

    _sock_type = socket.SOCK_STREAM
    _sock_proto = socket.IPPROTO_TCP
    _start_tls_compatible = True                    # loop.start_tls() wraps it in asyncio's SSLProtocol
    _sendfile_compatible = constants._SendfileMode.FALLBACK     # loop.sendfile(): read + write
    max_size = 256 * 1024             # the loop's receive buffer (RustySelector.recv_buf)

    def __init__(self, loop, stack, handle, protocol, waiter=None, extra=None, server=None):
        super().__init__(loop, stack, handle, protocol, extra)
        self._extra["sockname"], self._extra["peername"] = stack.tcp_endpoints(handle)
        self._server = server
        self._buffer = collections.deque()
        self._eof = False               # write_eof() called
        self._eof_seen = False          # the peer's FIN was delivered to the protocol
        self._flush_queued = False
        self._write_tick = -1             # the selector tick of the last write (see _close_sent)
        self._peek_out = None           # rusty_tcp_peek's out-arguments, for a ViewProtocol only
        self._reader = _not_started     # until connection_made has run (see _start)
        self.set_protocol(protocol)
        if server is not None:
            server._attach(self) if _ATTACH_TRANSPORT else server._attach()
        self._call_soon(self._start)
        if waiter is not None:
            self._call_soon(set_result_unless_cancelled, waiter, None)

    def _start(self):
        # One callback for asyncio's two (connection_made, then the reader added):
        # the same order, one Handle less per connection. Until it runs the reader is
        # a no-op, so a stack event for this handle (a peer that speaks or closes at
        # once) never reaches the protocol before connection_made; the bytes wait in
        # the stack and the read below takes them.
        self._reader = self._protocol_reader
        try:
            self._protocol.connection_made(self)
        finally:
            self._read_ready()              # data may have arrived before we existed

    def set_protocol(self, protocol):
        # The reader for this kind of protocol, as a plain function: a bound method kept
        # on self would be a reference cycle.
        if isinstance(protocol, BufferedProtocol):
            reader = StackStreamTransport._read_ready_buffered
        elif isinstance(protocol, ViewProtocol):
            reader = StackStreamTransport._read_ready_views
            if self._peek_out is None:
                self._peek_out = (ffi.new("const uint8_t **"), ffi.new("size_t *"))
        else:
            reader = StackStreamTransport._read_ready_data
        self._protocol_reader = reader
        if self._reader is not _not_started:
            self._reader = reader
        super().set_protocol(protocol)

    def _close_handle(self, handle):
        self._stack.tcp_close(handle)

    def _setsockopt(self, name, value):
        if self._handle is not None:
            self._stack.tcp_setsockopt(self._handle, name, value)

    def _getsockopt(self, name):
        """The stack connection's option in force; None once the handle is gone."""
        if self._handle is None:
            return None
        return self._stack.tcp_getsockopt(self._handle, name)

    # -- events from the stack ----------------------------------------------------------

    def _stack_event(self, typ, flags, arg, arg2):
        if typ == _EV_READABLE or typ == _EV_EOF:
            self._reader(self)          # (the selector calls _reader itself for a READABLE)
        elif typ == _EV_WRITABLE:
            if self._buffer and not self._flush_queued:     # a queued flush will send it anyway
                self._write_ready()
        elif typ == _EV_CLOSED:
            if arg < 0:
                code = -arg
                self._fatal_error(OSError(code, os.strerror(code)), "Fatal read error on socket transport")
            else:
                self._read_ready()

    # -- reading --------------------------------------------------------------------------

    def _read_ready(self):
        self._reader(self)

    # The readers: each returns at once for a transport that may not read now (closed
    # handle, EOF seen, paused, closing), so the selector can call one straight away.

    def _read_ready_data(self):
        # One copy out of the stack into the loop's receive buffer, one into bytes.
        # A read that does not fill the buffer drained the connection: no second
        # call to learn "nothing more" (a FIN arrives as its own EOF event).
        handle = self._handle
        if handle is None or self._eof_seen:
            return
        ptr = self._stack._ptr
        if ptr is None:
            ptr = self._stack._live()       # raises: the stack is closed
        sel = self._selector
        buf, chars = sel.recv_buf, sel.recv_chars
        cap = len(buf)
        while not self._paused and not self._closing:
            n = _tcp_recv(ptr, handle, buf, cap)
            if n <= 0:
                self._read_stopped(n)
                return
            data = _unpack(chars, n)     # the one copy into a bytes object
            try:
                self._protocol.data_received(data)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
                return
            if n < cap:
                return

    def _read_ready_views(self):
        # Zero copy: the view is the stack's receive ring itself (rusty_tcp_peek),
        # released to the stack (rusty_tcp_consume, which may open the window)
        # after the callback. A view kept past the call is reported, and the
        # connection moves to a copy of its ring (rusty_tcp_rx_detach) while the
        # old ring lives as long as the kept view: it is never overwritten.
        if self._handle is None or self._eof_seen:
            return
        ptr, handle = self._stack._live(), self._handle
        out, size = self._peek_out
        while not self._paused and not self._closing:
            n = lib.rusty_tcp_peek(ptr, handle, out, size)
            if n <= 0:
                self._read_stopped(n)
                return
            region = ffi.buffer(out[0], n)
            base = sys.getrefcount(region)
            view = memoryview(region)
            try:
                self._protocol.view_received(view)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.view_received() call failed.")
                return
            finally:
                view.release()
                # A kept view moves the connection to a copy before the bytes are
                # consumed: consuming the last of them gives the ring back.
                kept = sys.getrefcount(region) > base
                if kept:
                    weakref.finalize(region, _keep_alive, self._stack.tcp_rx_detach(handle))
                lib.rusty_tcp_consume(ptr, handle, n, 0)
            if kept:
                self._report_callback_error(
                    RuntimeError("a memoryview from view_received() was kept past the call; copy what you "
                                 "keep (bytes(view[a:b])). It stays valid: the connection moved to a new buffer."),
                    self._protocol.view_received)

    def _read_ready_buffered(self):
        if self._handle is None or self._eof_seen:
            return
        while not self._paused and not self._closing:
            try:
                buf = self._protocol.get_buffer(-1)
                if not len(buf):
                    raise RuntimeError("get_buffer() returned an empty buffer")
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
                return
            try:
                n = _recv_into(self._stack, self._handle, buf)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal read error on socket transport")
                return
            if n is None:
                return
            if not n:
                self._read_ready_eof()
                return
            try:
                self._protocol.buffer_updated(n)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")
                return
            if n < len(buf):
                return                  # drained (see _read_ready_data)

    def _read_stopped(self, ret):
        """A read from the stack returned ret <= 0: EOF (0), drained (-EAGAIN), or an error."""
        if ret == 0:
            self._read_ready_eof()
        elif ret != -errno.EAGAIN:
            self._fatal_error(OSError(-ret, os.strerror(-ret)), "Fatal read error on socket transport")

    def _read_ready_eof(self):
        self._eof_seen = True
        if self._loop.get_debug():
            log.debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if not keep_open:
            self.close()

    # -- writing ----------------------------------------------------------------------------

    def write(self, data):
        if (type(data) is bytes and data and not self._buffer and not self._eof and not self._conn_lost
                and self._stack._ptr is not None):
            # The common case, _send_bytes inlined: one C call into the send ring. Anything
            # else (the ring took part or none, an error) goes the general way below.
            sel, ptr = self._selector, self._stack._ptr
            ret = _tcp_send(ptr, self._handle, data, len(data), sel.now_us)
            if ret > 0:
                if not sel.batching:
                    _output(ptr, _clock() // 1000)     # self._handed(), inlined
                sel._active = True
                self._write_tick = sel.ticks
                if ret == len(data):
                    return
                data = memoryview(data)[ret:]   # a view of the rest: no copy of a big write
        if isinstance(data, StaticPayload):
            self._write_payload(data)
            return
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        if self._conn_lost:
            self._count_write_after_loss()
            return
        if not self._buffer:
            # Straight into the stack's send ring: rusty_tcp_send only queues
            # (segments are built when the stack polls, coalescing this tick's
            # writes), so this is one C call and sends nothing earlier.
            n = self._send_bytes(data)
            if n is None or n == len(data):
                return
            data = memoryview(data)[n:]
        # Ensure that what we buffer is immutable (the caller may reuse a bytearray);
        # a view into bytes already is, and is kept without a copy.
        if type(data) is not bytes and not (type(data) is memoryview and type(data.obj) is bytes):
            data = bytes(data)
        self._enqueue(data, len(data))

    def _write_payload(self, payload):
        # A StaticPayload goes through the same ordered queue as bytes (after
        # whatever bytes are queued), as (payload, offset, length) entries; the
        # stack references its bytes (no copy) and checksums them from its table.
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not len(payload):
            return
        if self._conn_lost:
            self._count_write_after_loss()
            return
        off = 0
        if not self._buffer:
            off = self._send_now(self._stack.tcp_send_payload, payload)
            if off is None or off == len(payload):
                return
        self._enqueue((payload, off, len(payload) - off), len(payload) - off)

    def _send_bytes(self, data):
        """write()'s direct path: the count the stack took, None after a fatal error."""
        try:
            ptr = self._stack._live()
        except ValueError as exc:
            self._fatal_error(exc, "Fatal write error on socket transport")
            return None
        # bytes go to cffi as the const uint8_t * itself; other buffers need a view.
        n = self._sent(_tcp_send(ptr, self._handle, data if type(data) is bytes else ffi.from_buffer(data),
                                 len(data), self._selector.now_us))
        if n is None:
            return None
        if n:
            self._handed()
        self._write_tick = self._selector.ticks
        return n

    def _sent(self, ret):
        """rusty_tcp_send's result as bytes taken: 0 when the send buffer is full, None
        after an error (made fatal here)."""
        if ret >= 0:
            return ret
        if ret == _EAGAIN:
            return 0
        self._fatal_error(_send_error(ret), "Fatal write error on socket transport")
        return None

    def _send_now(self, send, item):
        """Hand `item` to the stack at once: the count it took, None after a fatal error."""
        try:
            n = send(self._handle, item)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal write error on socket transport")
            return None
        if n:
            self._handed()
        self._write_tick = self._selector.ticks
        return n

    def _enqueue(self, item, size):
        """Queue bytes or a (payload, offset, length) entry for the next tick's hand-over."""
        self._buffer.append(item)
        self._buffer_size += size
        self._write_tick = self._selector.ticks
        if not self._flush_queued:
            self._flush_queued = True
            self._selector.flush.append(self)
        if self._buffer_size > self._high_water:
            self._maybe_pause_protocol()

    def _count_write_after_loss(self):
        # As asyncio's transports: writes after the connection is lost are
        # dropped, and after a few of them each one is logged.
        if self._conn_lost >= constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES:
            log.warning("socket.send() raised exception.")
        self._conn_lost += 1

    def writelines(self, list_of_data):
        # Outside the batch, every piece is handed to the stack first and the lot
        # output once: segments as full as one write of the joined bytes would make.
        sel = self._selector
        if sel.batching:
            for data in list_of_data:
                self.write(data)
            return
        sel.batching = True
        try:
            for data in list_of_data:
                self.write(data)
        finally:
            sel.batching = False
        if self._handle is not None and self._stack._ptr is not None:
            self._handed()

    def _write_ready(self):
        """Hand the buffer to the stack (once per tick from RustySelector._flush, or on WRITABLE)."""
        self._flush_queued = False
        if self._handle is None or self._conn_lost:
            return
        buf, handle = self._buffer, self._handle
        now = self._selector.now_us     # this tick's time: no clock read per send
        try:
            ptr = self._stack._live()
        except ValueError as exc:
            self._fatal_error(exc, "Fatal write error on socket transport")
            return
        while buf:
            chunk = buf[0]
            if type(chunk) is tuple:    # (StaticPayload, offset, length)
                payload, off, length = chunk
                try:
                    n = self._stack.tcp_send_payload(handle, payload, off, length)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._fatal_error(exc, "Fatal write error on socket transport")
                    return
                self._buffer_size -= n
                if n < length:
                    buf[0] = (payload, off + n, length - n)
                    break               # payload queue full: wait for WRITABLE
                buf.popleft()
                continue
            if len(buf) > 1 and len(chunk) < _COALESCE and type(buf[1]) is not tuple:
                pieces, size = [], 0
                while buf and size < _COALESCE and type(buf[0]) is not tuple:
                    size += len(buf[0])
                    pieces.append(buf.popleft())
                chunk = b"".join(pieces)
                buf.appendleft(chunk)
            # chunk is bytes, or a view into bytes (the rest of a big write): cffi
            # passes bytes as the const uint8_t * without a from_buffer object.
            data = chunk if type(chunk) is bytes else ffi.from_buffer(chunk)
            n = self._sent(_tcp_send(ptr, handle, data, len(chunk), now))
            if n is None:
                return
            self._buffer_size -= n
            if n < len(chunk):
                if n:
                    buf[0] = memoryview(chunk)[n:]      # O(1): slicing bytes copied the rest each time
                break                   # the stack's send buffer is full: wait for WRITABLE
            buf.popleft()
        self._selector.note_activity()
        if self._protocol_paused:
            self._maybe_resume_protocol()
        if not buf:
            if self._closing:
                if not self._conn_lost:
                    self._close_sent(True)      # the FIN goes with the data just handed over
            elif self._eof:
                self._shutdown_write()

    def _shutdown_write(self):
        try:
            self._stack.tcp_shutdown(self._handle, socket.SHUT_WR)
        except OSError as exc:
            self._fatal_error(exc, "Fatal error on shutdown")
            return
        self._handed()

    def _drop_buffer(self):
        self._buffer.clear()
        self._buffer_size = 0

    def write_eof(self):
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffer:
            self._shutdown_write()

    def can_write_eof(self):
        return True

    # -- closing -------------------------------------------------------------------------------

    def close(self):
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            self._close_sent(self._write_tick == self._selector.ticks)

    def _close_sent(self, fin_now):
        """Everything written is with the stack; the handle goes back with connection_lost,
        on the next iteration as in asyncio. fin_now (data was written this tick, as a
        server's response before its close): queue the FIN at once, so it leaves with
        that data as the kernel's close() sends it. A FIN a tick later lets an HTTP
        client close first and keep a TIME-WAIT per request; without fresh data there
        is nothing to ride on, and the FIN goes with the handle."""
        if fin_now and not self._eof and not self._eof_seen and self._handle is not None \
                and self._stack._ptr is not None:
            # An error (reset meanwhile) needs no report: connection_lost follows anyway.
            lib.rusty_tcp_shutdown(self._stack._ptr, self._handle, _SHUT_WR, self._selector.now_us)
            self._handed()
        self._conn_lost += 1
        self._call_soon(self._call_connection_lost, None)

    def abort(self):
        self._force_close(None)

    def _call_connection_lost(self, exc):
        server = self._server
        try:
            super()._call_connection_lost(exc)
        finally:
            if server is not None:
                self._server = None
                server._detach(self) if _ATTACH_TRANSPORT else server._detach()
