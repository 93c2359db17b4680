"""TCP servers and outgoing connections on the user-space stack.

Owns: StackListenSocket (a listening stack socket that asyncio's own Server
object can hold next to kernel sockets), accepting connections into
StackStreamTransports, and the active open behind create_connection. Not:
choosing stack or kernel (aiorusty.loop), the transport (transports/stream.py).

Servers are asyncio's own asyncio.Server (base_events.Server), not a copy:
its sockets list holds StackListenSocket objects (and, for a wildcard host,
the kernel's listening sockets too), and RustyEventLoop's _start_serving /
_stop_serving hooks send stack sockets here and kernel sockets to asyncio. So
start_serving, serve_forever, is_serving, close, wait_closed (waiting for
connections on 3.12+), close_clients/abort_clients (3.13), `async with` and
server.sockets[0].getsockname() behave exactly as on the running Python.

Call chain (accept): RustySelector._dispatch -> StackListenSocket._stack_event
-> _accept_ready -> Stack.tcp_accept (C) -> protocol_factory() ->
StackStreamTransport (connection_made is scheduled with call_soon).
"""

import contextvars
import errno
import functools
import os
import socket
import sys
from asyncio import base_events, sslproto

from . import _ipv4
from ._rusty import lib
from .transports.stream import StackStreamTransport

__all__ = ["StackListenSocket", "create_stack_connection", "adopt_connection", "add_stack_listeners", "new_server",
           "make_transport", "stack_listen"]

_EV_ACCEPT = lib.RUSTY_EV_TCP_ACCEPT
_EV_CONNECTED = lib.RUSTY_EV_TCP_CONNECTED
_EV_CLOSED = lib.RUSTY_EV_TCP_CLOSED


def make_transport(loop, stack, handle, protocol, waiter=None, *, sslcontext=None, server_side=False,
                   server_hostname=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None, server=None):
    """A StackStreamTransport for the handle; with sslcontext, wrapped in asyncio's SSLProtocol
    (as asyncio's own _make_ssl_transport does). Returns the transport the app protocol sees."""
    if not sslcontext:
        return StackStreamTransport(loop, stack, handle, protocol, waiter, server=server)
    kw = {"ssl_handshake_timeout": ssl_handshake_timeout}
    if sys.version_info >= (3, 11):
        kw["ssl_shutdown_timeout"] = ssl_shutdown_timeout
    ssl_protocol = sslproto.SSLProtocol(loop, protocol, None if isinstance(sslcontext, bool) else sslcontext,
                                        waiter, server_side, server_hostname, **kw)
    StackStreamTransport(loop, stack, handle, ssl_protocol, server=server)
    return ssl_protocol._app_transport


class StackListenSocket:
    """A listening TCP socket on a stack, shaped enough like a socket for asyncio.Server."""

    family = socket.AF_INET
    type = socket.SOCK_STREAM
    proto = socket.IPPROTO_TCP

    def __init__(self, loop, stack, handle):
        self._loop = loop
        self._stack = stack
        self._handle = handle
        self._name = stack.tcp_info(handle)["local"]
        self._context = contextvars.copy_context()
        self._factory = None
        self._server = None
        self._ssl = {}
        self._options = {}
        loop._stack_register(stack, handle, self)

    def __repr__(self):
        return f"<aiorusty.StackListenSocket laddr={self._name}{' closed' if self._handle is None else ''}>"

    def fileno(self):
        return -1

    def getsockname(self):
        return self._name

    def getpeername(self):
        raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))

    def listen(self, backlog=None):
        pass                            # the stack listens from tcp_listen on

    def setsockopt(self, level, optname, value, optlen=None):
        self._options[(level, optname)] = value

    def getsockopt(self, level, optname, buflen=None):
        return self._options.get((level, optname), 0)

    def gettimeout(self):
        return 0.0

    def setblocking(self, flag):
        pass

    def close(self):
        handle, self._handle = self._handle, None
        self._factory = None
        if handle is not None:
            self._loop._stack_unregister(self._stack, handle)
            if not self._stack.closed:
                self._stack.tcp_close(handle)

    def detach(self):
        return -1

    # -- serving ----------------------------------------------------------------------

    def _start(self, protocol_factory, server, sslcontext=None, ssl_handshake_timeout=None,
               ssl_shutdown_timeout=None):
        if self._handle is None:
            return
        self._factory = protocol_factory
        self._server = server
        if sslcontext:
            self._ssl = {"sslcontext": sslcontext, "server_side": True,
                         "ssl_handshake_timeout": ssl_handshake_timeout,
                         "ssl_shutdown_timeout": ssl_shutdown_timeout}
        self._loop.call_soon(self._accept_ready, context=self._context)    # SYNs that came first

    def _stack_event(self, typ, flags, arg, arg2):
        if typ == _EV_ACCEPT:
            self._accept_ready()

    def _accept_ready(self):
        loop, stack = self._loop, self._stack
        while self._factory is not None and self._handle is not None:
            try:
                handle = stack.tcp_accept(self._handle)
            except OSError as exc:
                loop.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": exc,
                    "socket": self,
                })
                return
            if handle is None:
                return
            try:
                protocol = self._factory()
                waiter = None
                if self._ssl:
                    waiter = loop.create_future()
                transport = make_transport(loop, stack, handle, protocol, waiter, server=self._server, **self._ssl)
                if waiter is not None:
                    waiter.add_done_callback(functools.partial(self._handshake_done, protocol, transport))
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                stack.tcp_close(handle)     # as asyncio closes the accepted socket
                if loop.get_debug():        # asyncio reports these in debug mode only
                    loop.call_exception_handler({
                        "message": "Error on transport creation for incoming connection",
                        "exception": exc,
                    })


    def _handshake_done(self, protocol, transport, waiter):
        # asyncio reports failed incoming TLS handshakes in debug mode only; SSLProtocol logs them.
        if not waiter.cancelled() and waiter.exception() is not None and self._loop.get_debug():
            self._loop.call_exception_handler({
                "message": "Error on transport creation for incoming connection",
                "exception": waiter.exception(),
                "protocol": protocol,
                "transport": transport,
            })


def new_server(loop, protocol_factory, backlog, ssl, ssl_handshake_timeout, ssl_shutdown_timeout):
    """An empty asyncio.Server (sockets are added by add_stack_listeners)."""
    args = [loop, [], protocol_factory, ssl, backlog, ssl_handshake_timeout]
    if sys.version_info >= (3, 11):
        args.append(ssl_shutdown_timeout)
    return base_events.Server(*args)


def stack_listen(stack, ip, port, backlog, reuse_port=False):
    handle = stack.tcp_listen(ip, port, backlog, reuse_port)     # port 0: the stack picks a free one
    # asyncio and uvloop set TCP_NODELAY on every TCP transport; the listener's
    # connections inherit it (Nagle only where the app turns NODELAY off).
    stack.tcp_setsockopt(handle, "nodelay", 1)
    return handle


def add_stack_listeners(loop, server, stacks_and_ips, port, backlog, reuse_port=False):
    """Listen on each (stack, ip) with the same port; returns the port (picked if 0).
    reuse_port as SO_REUSEPORT: share the port with other listeners that set it."""
    made = []
    try:
        for stack, ip in stacks_and_ips:
            handle = stack_listen(stack, ip, port, backlog, reuse_port)
            lsock = StackListenSocket(loop, stack, handle)
            if reuse_port:
                lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)     # as getsockopt would read it
            made.append(lsock)
            port = lsock.getsockname()[1]
    except BaseException:
        for lsock in made:
            lsock.close()
        raise
    server._sockets.extend(made)
    return port


class _Connecting:
    """Stands on a handle during the active open and resolves a future with its outcome."""

    def __init__(self, fut):
        self.fut = fut
        self._context = contextvars.copy_context()

    @staticmethod
    def _reader(_):
        pass                            # data before the transport takes over waits in the stack

    def _stack_event(self, typ, flags, arg, arg2):
        if self.fut.done():
            return
        if typ == _EV_CONNECTED:
            self.fut.set_result(None)
        elif typ == _EV_CLOSED:
            code = -arg if arg < 0 else errno.ECONNRESET
            self.fut.set_exception(OSError(code, os.strerror(code)))


async def create_stack_connection(loop, stack, protocol_factory, dest, host, *, ssl=None, local_addr=None,
                                  server_hostname=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                                  happy_eyeballs_delay=None, interleave=None, all_errors=False,
                                  family=0, proto=0, flags=0, sock=None):
    """loop.create_connection() for a destination that routes through `stack`."""
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl:
        server_hostname = host
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    src = None
    if local_addr is not None:
        src = (local_addr[0] or 0, local_addr[1] or 0)
    try:
        handle = stack.tcp_connect(dest, src)
    except OSError as exc:
        if src is None or exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
            raise
        # asyncio's words for a local_addr its bind() refused
        laddr = (_ipv4.literal(src[0]) or "0.0.0.0", src[1])
        raise OSError(exc.errno, f"error while attempting to bind on address {laddr!r}: "
                                 f"{os.strerror(exc.errno).lower()}") from None
    fut = loop.create_future()
    loop._stack_register(stack, handle, _Connecting(fut))
    try:
        await fut
    except BaseException as exc:
        loop._stack_unregister(stack, handle)
        stack.tcp_abort(handle)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, f"Connect call failed {dest}") from None
        raise
    finally:
        # A failed future holds the exception, whose traceback holds this frame and so
        # the future: a cycle keeping ssl= (and the protocol) alive until the garbage
        # collector runs. asyncio breaks the same cycle in sock_connect.
        fut = None
    return await adopt_connection(loop, stack, handle, protocol_factory, ssl=ssl, server_hostname=server_hostname,
                                  ssl_handshake_timeout=ssl_handshake_timeout,
                                  ssl_shutdown_timeout=ssl_shutdown_timeout)


async def adopt_connection(loop, stack, handle, protocol_factory, *, ssl=None, server_side=False,
                           server_hostname=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
    """(transport, protocol) for a connected handle: the tail of create_connection, and all of
    create_connection(sock=) / connect_accepted_socket for a StackSocket."""
    stack.tcp_setsockopt(handle, "nodelay", 1)     # as asyncio's transports do
    protocol = protocol_factory()
    waiter = loop.create_future()
    transport = make_transport(loop, stack, handle, protocol, waiter, sslcontext=ssl, server_side=server_side,
                               server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
                               ssl_shutdown_timeout=ssl_shutdown_timeout)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    finally:
        waiter = None                   # the same cycle, through a failed handshake
    return transport, protocol


