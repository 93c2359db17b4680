"""StackDatagramTransport: asyncio.DatagramTransport over a stack UDP socket.

Owns: sendto (with asyncio's buffering when the stack pushes back), receiving
(UDP_READABLE -> drain the socket's queue -> datagram_received), ICMP errors
(UDP_ERROR -> error_received, for connected endpoints and hard errors only: Linux
reports ICMP errors to connected UDP sockets only, and soft ones - net or host
unreachable, an unanswered ARP among them, time exceeded - not at all without
IP_RECVERR, which asyncio does not set; aiorusty matches the kernel), and the
connected-endpoint rules asyncio applies (sendto address must be None or the
peer; datagrams from other peers are dropped, as connect() makes the kernel do),
and the socket options create_datagram_endpoint's arguments set (socket_options).

Behaviour follows asyncio's _SelectorDatagramTransport on the running Python:
empty datagrams are sent on 3.13+ and ignored before; an exception raised by
datagram_received goes to the loop's exception handler and the transport stays
open; an error from the stack's sendto goes to error_received.

A datagram handed to the stack waits in its interface's transmit queue for
the output step: inside the selector's batch of stack events that is the step
after the batch; a sendto() anywhere else outputs at once, as a write does
(RustySelector, "Writes at once").

Call chain: RustySelector._dispatch -> _stack_event -> _read_ready ->
Stack.udp_recvfrom (C) -> protocol.datagram_received;  sendto ->
Stack.udp_sendto (C) [-> Stack.output (C) outside the batch].
"""

import collections
import os
import socket
import sys
from asyncio import DatagramTransport, constants

from .. import _ipv4
from .._rusty import lib
from ._base import _StackTransport, log, set_result_unless_cancelled

__all__ = ["StackDatagramTransport", "socket_options"]

_EV_READABLE = lib.RUSTY_EV_UDP_READABLE
_EV_ERROR = lib.RUSTY_EV_UDP_ERROR
_EV_F_SOFT = lib.RUSTY_EV_F_SOFT
_SEND_EMPTY = sys.version_info >= (3, 13)
_HEADER = 8 if sys.version_info >= (3, 13) else 0     # 3.13 counts the UDP header in the buffer size
_NO_REUSE_ADDRESS = sys.version_info >= (3, 11)      # the argument is gone, not only refused
_SENT, _FULL, _STOPPED = "sent", "full", "stopped"     # _send_one results


def _dest(addr):
    """(ipv4, port) for sendto's addr, resolving a name the way socket.sendto would (blocking)."""
    if not isinstance(addr, tuple):
        raise TypeError(f"AF_INET address must be tuple, not {type(addr).__name__}")
    host, port = addr
    ip = _ipv4.literal(host)
    if ip is None:
        ip = socket.gethostbyname(host)
    return ip, port


def socket_options(family=0, proto=0, flags=0, reuse_port=None, allow_broadcast=None, sock=None, **removed):
    """The socket options create_datagram_endpoint(**kw) asks for, as {(level, name): value},
    with asyncio's errors for arguments it refuses. get_extra_info('socket').getsockopt reads
    them back. The stack does not act on them: a second endpoint on a bound port is refused
    (EADDRINUSE) whatever SO_REUSEPORT says, and broadcasts are sent without SO_BROADCAST."""
    for name, value in removed.items():
        if name != "reuse_address" or _NO_REUSE_ADDRESS:
            raise TypeError(f"create_datagram_endpoint() got an unexpected keyword argument {name!r}")
        if value:
            raise ValueError("Passing `reuse_address=True` is no longer supported, as the usage of "
                             "SO_REUSEPORT in UDP poses a significant security concern.")
    options = {}
    if reuse_port:
        options[(socket.SOL_SOCKET, socket.SO_REUSEPORT)] = 1
    if allow_broadcast:
        options[(socket.SOL_SOCKET, socket.SO_BROADCAST)] = 1
    return options


class StackDatagramTransport(_StackTransport, DatagramTransport):
    """A UDP endpoint on the user-space stack (made by loop.create_datagram_endpoint)."""

    _sock_type = socket.SOCK_DGRAM
    _sock_proto = socket.IPPROTO_UDP

    def __init__(self, loop, stack, handle, protocol, address=None, waiter=None, extra=None, options=None):
        super().__init__(loop, stack, handle, protocol, extra)
        self._extra["socket"]._options.update(options or {})
        self._address = address
        self._buffer = collections.deque()
        self._flush_scheduled = False
        self._extra["sockname"] = self._stack.udp_getsockname(handle)
        self._extra["peername"] = address
        self._call_soon(self._protocol.connection_made, self)
        if waiter is not None:
            self._call_soon(set_result_unless_cancelled, waiter, None)

    def _close_handle(self, handle):
        self._stack.udp_close(handle)

    # -- events from the stack -------------------------------------------------------

    def _stack_event(self, typ, flags, arg, arg2):
        if typ == _EV_READABLE:
            self._read_ready()
        elif typ == _EV_ERROR and not flags & _EV_F_SOFT:
            self._error_event(-arg, arg2)

    def _read_ready(self):
        stack, handle, peer = self._stack, self._handle, self._address
        if handle is None:
            return
        while not self._closing and not self._paused:
            try:
                got = stack.udp_recvfrom(handle)
            except OSError as exc:
                self._protocol.error_received(exc)
                continue
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal read error on datagram transport")
                return
            if got is None:
                return
            data, addr = got
            if peer is not None and addr != peer:
                continue
            try:
                self._protocol.datagram_received(data, addr)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._report_callback_error(exc, self._protocol.datagram_received)

    def _error_event(self, code, peer_ip):
        if self._closing or self._address is None:
            return
        if peer_ip and _ipv4.to_str(peer_ip) != self._address[0]:
            return
        self._protocol.error_received(OSError(code, os.strerror(code)))

    # -- sending ---------------------------------------------------------------------

    def sendto(self, data, addr=None):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if not data and not _SEND_EMPTY:
            return
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = self._address
        if self._conn_lost:
            if self._conn_lost >= constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                log.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        if not self._buffer:
            if self._send_one(data, addr) is not _FULL:
                return
            self._schedule_flush()
        self._buffer.append((bytes(data), addr))
        self._buffer_size += len(data) + _HEADER
        self._maybe_pause_protocol()

    def _send_one(self, data, addr):
        """Hand one datagram to the stack: _SENT, _FULL (no transmit room: keep it), or
        _STOPPED (an OSError went to error_received, as asyncio does, or a fatal error)."""
        try:
            self._stack.udp_sendto(self._handle, data, _dest(addr))
        except (BlockingIOError, InterruptedError):
            return _FULL
        except OSError as exc:
            self._protocol.error_received(exc)
            return _STOPPED
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal write error on datagram transport")
            return _STOPPED
        self._handed()
        return _SENT

    def _schedule_flush(self):
        # The stack frees transmit room in its next poll, which runs before this callback.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._sendto_ready)

    def _sendto_ready(self):
        self._flush_scheduled = False
        if self._handle is None:
            return
        while self._buffer:
            data, addr = self._buffer.popleft()
            self._buffer_size -= len(data) + _HEADER
            sent = self._send_one(data, addr)
            if sent is _FULL:
                self._buffer.appendleft((data, addr))
                self._buffer_size += len(data) + _HEADER
                self._schedule_flush()
                break
            if sent is _STOPPED:
                return
        self._maybe_resume_protocol()
        if not self._buffer and self._closing and not self._conn_lost:
            self._conn_lost += 1
            self._call_soon(self._call_connection_lost, None)

    def _drop_buffer(self):
        self._buffer.clear()
        self._buffer_size = 0

    # -- closing -----------------------------------------------------------------------

    def close(self):
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            self._conn_lost += 1
            self._call_soon(self._call_connection_lost, None)

    def abort(self):
        self._force_close(None)
