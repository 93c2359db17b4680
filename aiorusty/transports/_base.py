"""_StackTransport: the part every stack transport shares - lifetime, errors, extra info.

Owns: the one close/error path (asyncio's names: _fatal_error -> _force_close
-> _call_connection_lost, connection_lost exactly once), running protocol
callbacks in the contextvars context captured at creation, registration with
the loop's selector (so stack events reach _stack_event), and releasing the
stack handle. Not: reading or writing (datagram.py, stream.py).
"""

import contextvars
import logging
import warnings
from asyncio import transports

from ._trsock import TransportSocket

log = logging.getLogger("aiorusty.transports")


def set_result_unless_cancelled(fut, result):
    if not fut.cancelled():
        fut.set_result(result)


class _StackTransport(transports._FlowControlMixin):
    """Base of the stack transports; a handle on loop.stack plus a protocol."""

    _sock_type = None
    _sock_proto = 0

    def __init__(self, loop, stack, handle, protocol, extra=None):
        super().__init__(extra, loop)
        self._stack = stack
        self._handle = handle
        self._protocol = protocol
        self._protocol_connected = True
        self._closing = False
        self._paused = False
        self._conn_lost = 0
        self._buffer_size = 0
        self._context = contextvars.copy_context()
        self._selector = loop._selector
        self._extra["socket"] = TransportSocket(self, self._sock_type, self._sock_proto)
        loop._stack_register(stack, handle, self)

    def _call_soon(self, callback, *args):
        """Schedule a protocol callback in the transport's context (asyncio's call_soon order)."""
        return self._loop.call_soon(callback, *args, context=self._context)

    def __repr__(self):
        info = [self.__class__.__name__]
        if self._handle is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"handle={self._handle}")
        name = self._extra.get("sockname")
        if name:
            info.append(f"sockname={name}")
        peer = self._extra.get("peername")
        if peer:
            info.append(f"peername={peer}")
        return f"<{' '.join(info)}>"

    def get_protocol(self):
        return self._protocol

    def set_protocol(self, protocol):
        self._protocol = protocol
        self._protocol_connected = True

    def is_closing(self):
        return self._closing

    # pause_reading/resume_reading live here as on asyncio's _SelectorTransport
    # (3.11+: datagram transports have them too). Resuming reads what queued up.

    def is_reading(self):
        return not self._paused and not self._closing

    def pause_reading(self):
        if not self.is_reading():
            return
        self._paused = True
        if self._loop.get_debug():
            log.debug("%r pauses reading", self)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        self._call_soon(self._read_ready)
        if self._loop.get_debug():
            log.debug("%r resumes reading", self)

    def _handed(self):
        """The stack took bytes (or a FIN) from this transport: keep the loop polling for
        the answer and, outside the selector's batch of stack events, send them now.

        Inside the batch the tick's output step follows the callbacks, and the writes of
        a tick leave together; anywhere else (a task, a timer, call_soon, a thread-safe
        callback) nothing would send them until the loop's next tick, and a callback
        that blocks after writing would hold them back (see stream.py: Write path)."""
        self._selector.handed(self._stack)

    def get_write_buffer_size(self):
        return self._buffer_size

    def _report_callback_error(self, exc, callback):
        """A protocol callback raised where asyncio would let its Handle report it."""
        self._loop.call_exception_handler({
            "message": f"Exception in callback {callback!r}",
            "exception": exc,
            "transport": self,
            "protocol": self._protocol,
        })

    def _fatal_error(self, exc, message="Fatal error on transport"):
        # OSErrors are the peer's or the network's doing: logged in debug mode only, as asyncio does.
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                log.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })
        self._force_close(exc)

    def _force_close(self, exc):
        if self._conn_lost:
            return
        self._drop_buffer()
        if not self._closing:
            self._closing = True
        self._conn_lost += 1
        self._call_soon(self._call_connection_lost, exc)

    def _drop_buffer(self):
        self._buffer_size = 0

    def _call_connection_lost(self, exc):
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            self._release()
            self._protocol = None
            self._loop = None

    def _release(self):
        """Give the stack handle back (after connection_lost, or on garbage collection)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        loop = self._loop
        if loop is not None:
            loop._stack_unregister(self._stack, handle)
        if loop is None or not loop.is_closed():
            self._close_handle(handle)

    def _close_handle(self, handle):
        raise NotImplementedError

    def __del__(self, _warn=warnings.warn):
        if getattr(self, "_handle", None) is not None and self._loop is not None and not self._loop.is_closed():
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            try:
                self._release()
            except Exception:
                pass


__all__ = ["_StackTransport", "set_result_unless_cancelled"]
