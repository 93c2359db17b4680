"""StackSocket: a socket.socket that lives on the user-space stack when the routing rule says so.

Owns: the socket object libraries create and hand to the loop (aiohttp's
client through aiohappyeyeballs, anyio's listeners, hypercorn, the loop's
own sock_* methods): bind, listen, connect, connect_ex, accept, recv,
recv_into, recvfrom, send, sendall, sendto, shutdown, close, getsockname,
getpeername, setsockopt/getsockopt, setblocking/settimeout, on a stack
socket handle; and the opt-in switch that makes socket.socket() create them
(use_stack_sockets, or AIORUSTY_SOCKETS=1 read when an aiorusty loop is
made). Not: the routing rule itself (RustyEventLoop), transports
(transports/), the loop's sock_* coroutines (loop.py waits on wait_ready()).

Life of a StackSocket. It starts as an ordinary kernel socket - it *is* a
socket.socket, so isinstance checks, options set before bind, and passing a
bound listener to worker processes behave as always. Binding to an address
a stack of the running aiorusty loop owns, or connecting to a destination
that loop routes to a stack, moves it onto that stack: its kernel descriptor
is closed and from then on every call acts on the stack's socket. Any other
socket (no aiorusty loop running in this thread, an IPv6 or Unix socket, a
wildcard bind, a destination the kernel serves) stays a kernel socket with
the kernel's behaviour, unchanged.

fileno() of a socket on the stack is -1, as for a closed socket: there is
no descriptor, and code that hands it to select() or epoll fails at once
instead of watching a wrong one. It cannot be passed to another process.

A socket on the stack never blocks: the stack runs in the loop's own thread,
so waiting inside a call would stop the only thing that can end the wait. A
call that would wait raises BlockingIOError whatever setblocking() said;
wait with the loop's sock_* coroutines, or hand the socket to
create_connection / create_server / connect_accepted_socket /
create_datagram_endpoint (sock=), which take over its stack handle.
"""

import asyncio
import contextvars
import errno
import os
import random
import socket as _socket_module
import weakref
from multiprocessing import reduction

from . import _ipv4 as _ipconv
from ._rusty import lib

__all__ = ["StackSocket", "use_stack_sockets", "stack_sockets_enabled", "is_stack_socket", "on_stack"]

ENV_SWITCH = "AIORUSTY_SOCKETS"

_KernelSocket = _socket_module.socket       # the class the switch replaces, kept for restoring it
_EV_TCP_CLOSED = lib.RUSTY_EV_TCP_CLOSED
_EV_TCP_CONNECTED = lib.RUSTY_EV_TCP_CONNECTED
_EV_UDP_ERROR = lib.RUSTY_EV_UDP_ERROR
_EV_F_SOFT = lib.RUSTY_EV_F_SOFT
_EPHEMERAL = (32768, 60999)                 # Linux's ip_local_port_range
_WILDCARDS = (None, "", "0.0.0.0")


def _error(code, what):
    return OSError(code, f"{what}: {os.strerror(code)}")


def _would_block(what):
    return BlockingIOError(errno.EAGAIN, f"{what}: a stack socket does not block; await the loop's sock_* "
                                         "coroutines or hand it to the loop (sock=)")


def _rusty_loop():
    """The running aiorusty loop with at least one stack, or None."""
    loop = asyncio._get_running_loop()
    if loop is None or not getattr(loop, "_stacks", None):
        return None
    return loop


class _Handle:
    """The stack side of a StackSocket: a stack socket handle registered with the loop's selector.

    Every stack event for the handle wakes whatever waits on the socket; the
    waiter retries its call (a readiness signal, as epoll's, not a result)."""

    __slots__ = ("loop", "stack", "handle", "kind", "listening", "connecting", "error", "waiters", "_context",
                 "__weakref__")

    def __init__(self, loop, stack, handle, kind):
        self.loop = loop
        self.stack = stack
        self.handle = handle
        self.kind = kind                # SOCK_STREAM or SOCK_DGRAM
        self.listening = False
        self.connecting = False
        self.error = 0                  # SO_ERROR: the errno a failed connect left
        self.waiters = []
        self._context = contextvars.copy_context()
        loop._stack_register(stack, handle, self)

    @staticmethod
    def _reader(self):
        self._wake()

    def _stack_event(self, typ, flags, arg, arg2):
        if typ == _EV_TCP_CONNECTED:
            self.connecting = False
        elif typ == _EV_TCP_CLOSED:
            self.connecting = False
            if arg < 0:
                self.error = -arg
        elif typ == _EV_UDP_ERROR and not flags & _EV_F_SOFT:   # soft: Linux needs IP_RECVERR to show it
            self.error = -arg
        self._wake()

    def _wake(self):
        waiters, self.waiters = self.waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def wait(self):
        fut = self.loop.create_future()
        self.waiters.append(fut)
        return fut

    def release(self):
        """Stop receiving events; the caller closes or hands over the stack handle. Whatever
        waits is woken, to find the socket closed."""
        self.loop._stack_unregister(self.stack, self.handle)
        if not self.loop.is_closed():
            self._wake()


def _close_handle(h):
    if h.stack.closed:
        return
    if h.kind == _socket_module.SOCK_DGRAM:
        h.stack.udp_close(h.handle)
    else:
        h.stack.tcp_close(h.handle)


class StackSocket(_KernelSocket):
    """An AF_INET socket that binds and connects on the user-space stack when the loop routes it there."""

    __slots__ = ("_stack_side", "_bound", "_peer", "_options", "_timeout", "_finalizer", "_companions")

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        self._stack_side = None
        self._bound = None              # (ip, port) recorded by a stack bind
        self._peer = None
        self._options = {}
        self._timeout = None
        self._finalizer = None
        self._companions = ()           # stack listeners beside a kernel wildcard listener
        super().__init__(family, type, proto, fileno)

    # -- where it lives -----------------------------------------------------------------------

    @property
    def on_stack(self):
        """True once the socket lives on the user-space stack."""
        return self._stack_side is not None

    def _kind(self):
        return self.type & ~(_socket_module.SOCK_NONBLOCK | _socket_module.SOCK_CLOEXEC)

    def _routable(self):
        return self._stack_side is None and self.family == _socket_module.AF_INET and \
            self._kind() in (_socket_module.SOCK_STREAM, _socket_module.SOCK_DGRAM)

    def _move_to_stack(self, loop, stack, handle=None):
        """Close the kernel descriptor and stand on `stack` (with `handle`, or one made later)."""
        self._timeout = self.gettimeout()
        os.close(self.detach())
        self._stack_side = (loop, stack)
        if handle is not None:
            self._attach(handle)

    def _attach(self, handle):
        loop, stack = self._stack_side[:2]
        h = _Handle(loop, stack, handle, self._kind())
        self._stack_side = (loop, stack, h)
        self._finalizer = weakref.finalize(self, _close_released, h)

    def _handle_or_raise(self, what):
        side = self._stack_side
        if side is None or len(side) < 3 or side[2] is None:
            raise _error(errno.ENOTCONN if side is not None else errno.EBADF, what)
        return side[2]

    @classmethod
    def _accepted(cls, loop, stack, handle, peer):
        """A connected StackSocket for a handle tcp_accept returned."""
        sock = cls(_socket_module.AF_INET, _socket_module.SOCK_STREAM, 0)
        sock._move_to_stack(loop, stack, handle)
        sock._peer = peer
        sock._timeout = 0.0
        return sock

    def stack_companions(self, loop):
        """For a kernel socket listening on the wildcard: stack listeners on its port, one per
        stack of `loop`, made on the first call (loop.sock_accept), so its accept loop also
        serves the stack's peers. [] for any other socket."""
        if self._companions or self._stack_side is not None or not self._routable() \
                or self._kind() != _socket_module.SOCK_STREAM:
            return [h for h, _ in self._companions]
        ip, port = super().getsockname()
        if ip != "0.0.0.0" or not port or not super().getsockopt(_socket_module.SOL_SOCKET,
                                                                   _socket_module.SO_ACCEPTCONN):
            return []
        from .server import stack_listen
        reuse = bool(super().getsockopt(_socket_module.SOL_SOCKET, _socket_module.SO_REUSEPORT))
        made = []
        for stack in loop._stacks:
            h = _Handle(loop, stack, stack_listen(stack, "0.0.0.0", port, 128, reuse), _socket_module.SOCK_STREAM)
            h.listening = True
            made.append((h, weakref.finalize(self, _close_released, h)))
        self._companions = tuple(made)
        return [h for h, _ in made]

    def accept_from(self, h):
        """accept() on companion listener h: a connected StackSocket and its peer, or BlockingIOError."""
        handle = h.stack.tcp_accept(h.handle)
        if handle is None:
            raise _would_block("accept")
        peer = h.stack.tcp_endpoints(handle)[1]
        return StackSocket._accepted(h.loop, h.stack, handle, peer), peer

    def _take_handle(self):
        """(stack, handle) for a transport or server that takes the socket over; the socket is left closed."""
        h = self._handle_or_raise("take over")
        h.release()
        self._finalizer.detach()
        self._stack_side = (h.loop, h.stack, None)
        return h.stack, h.handle

    # -- the socket API ---------------------------------------------------------------------------

    def bind(self, address):
        if self._stack_side is None:
            loop = _rusty_loop() if self._routable() else None
            ip = _ipconv.literal(address[0]) if loop is not None and isinstance(address, tuple) else None
            stack = loop._stack_for_local(ip) if ip is not None and ip != "0.0.0.0" else None
            if stack is None:
                return super().bind(address)
            self._move_to_stack(loop, stack)
        elif self._bound is not None or len(self._stack_side) == 3:
            raise _error(errno.EINVAL, "bind")
        loop, stack = self._stack_side[:2]
        ip, port = _ipconv.literal(address[0]), int(address[1])
        if stack.route(ip) != 1:
            raise _error(errno.EADDRNOTAVAIL, f"bind {address[0]}:{port}")
        if self._kind() == _socket_module.SOCK_DGRAM:
            self._attach(stack.udp_bind(ip, port))
            self._bound = stack.udp_getsockname(self._stack_side[2].handle)
        else:
            self._bound = (ip, port or random.randint(*_EPHEMERAL))

    def listen(self, backlog=128):
        if self._stack_side is None:
            return super().listen(backlog)
        if self._kind() != _socket_module.SOCK_STREAM:
            raise _error(errno.EOPNOTSUPP, "listen")
        side = self._stack_side
        if len(side) == 3:
            if side[2] is not None and side[2].listening:
                return                  # listen() again only changes the backlog on Linux
            raise _error(errno.EINVAL, "listen")
        if self._bound is None:
            raise _error(errno.EDESTADDRREQ, "listen on a stack socket that is not bound")
        from .server import stack_listen
        handle = stack_listen(side[1], self._bound[0], self._bound[1], backlog,
                              bool(self._options.get((_socket_module.SOL_SOCKET, _socket_module.SO_REUSEPORT))))
        self._attach(handle)
        self._stack_side[2].listening = True

    def accept(self):
        if self._stack_side is None:
            return super().accept()
        h = self._handle_or_raise("accept")
        if not h.listening:
            raise _error(errno.EINVAL, "accept")
        return self.accept_from(h)

    def connect(self, address):
        err = self.connect_ex(address)
        if err == errno.EINPROGRESS:
            raise BlockingIOError(err, os.strerror(err))
        if err:
            raise _error(err, f"connect {address[0]}:{address[1]}")

    def connect_ex(self, address):
        if self._stack_side is None:
            ip = _ipconv.literal(address[0]) if isinstance(address, tuple) else None
            stack = self._route_connect(ip)
            if stack is None:
                return super().connect_ex(address)
            self._move_to_stack(_rusty_loop(), stack)
        side = self._stack_side
        h = side[2] if len(side) == 3 else None
        dest = (_ipconv.literal(address[0]), int(address[1]))
        if self._kind() == _socket_module.SOCK_DGRAM:
            if h is None:
                self.bind((_source_ip(side[0], side[1], dest[0]), 0))
            self._peer = dest
            return 0
        if h is not None:
            if h.listening:
                return errno.EISCONN
            if h.error:
                err, h.error = h.error, 0
                return err
            return errno.EALREADY if h.connecting else errno.EISCONN
        handle = side[1].tcp_connect(dest, self._bound)
        side[1].tcp_setsockopt(handle, "nodelay", self._options.get(
            (_socket_module.IPPROTO_TCP, _socket_module.TCP_NODELAY), 0))
        self._attach(handle)
        self._stack_side[2].connecting = True
        self._peer = dest
        return errno.EINPROGRESS

    def _route_connect(self, ip):
        """The stack a connect to ip goes through, or None for the kernel (no aiorusty loop
        running, not routed to a stack, or bound to a kernel address already)."""
        loop = _rusty_loop() if self._routable() and ip is not None else None
        if loop is None or super().getsockname()[0] != "0.0.0.0":
            return None
        return loop._stack_for_dest(ip)

    def connect_result(self):
        """After a wait: 0 once connected, EINPROGRESS while the handshake runs, else the errno it failed with."""
        h = self._handle_or_raise("connect")
        if h.connecting:
            return errno.EINPROGRESS
        err, h.error = h.error, 0
        return err

    def recv(self, bufsize, flags=0):
        if self._stack_side is None:
            return super().recv(bufsize, flags)
        if self._kind() == _socket_module.SOCK_DGRAM:
            return self.recvfrom(bufsize, flags)[0]
        h = self._handle_or_raise("recv")
        data = h.stack.tcp_recv(h.handle, bufsize) if bufsize else b""
        if data is None:
            self._raise_pending(h, "recv")
        return data

    def recv_into(self, buffer, nbytes=0, flags=0):
        if self._stack_side is None:
            return super().recv_into(buffer, nbytes, flags)
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view), flags)
        view[:len(data)] = data
        return len(data)

    def recvfrom(self, bufsize, flags=0):
        if self._stack_side is None:
            return super().recvfrom(bufsize, flags)
        if self._kind() != _socket_module.SOCK_DGRAM:
            return self.recv(bufsize, flags), None
        h = self._handle_or_raise("recvfrom")
        got = h.stack.udp_recvfrom(h.handle, 65536)
        if got is None:
            self._raise_pending(h, "recvfrom")
        data, addr = got
        return data[:bufsize], addr

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        if self._stack_side is None:
            return super().recvfrom_into(buffer, nbytes, flags)
        view = memoryview(buffer).cast("B")
        data, addr = self.recvfrom(nbytes or len(view), flags)
        view[:len(data)] = data
        return len(data), addr

    def _raise_pending(self, h, what):
        if h.error:
            err, h.error = h.error, 0
            raise _error(err, what)
        raise _would_block(what)

    def send(self, data, flags=0):
        if self._stack_side is None:
            return super().send(data, flags)
        if self._kind() == _socket_module.SOCK_DGRAM:
            if self._peer is None:
                raise _error(errno.EDESTADDRREQ, "send")
            return self.sendto(data, self._peer)
        h = self._handle_or_raise("send")
        if h.connecting:
            raise _would_block("send")
        if h.error:
            self._raise_pending(h, "send")
        sent = h.stack.tcp_send(h.handle, data)
        if not sent and len(data):
            raise _would_block("send")
        h.loop._selector.handed(h.stack)
        return sent

    def sendall(self, data, flags=0):
        if self._stack_side is None:
            return super().sendall(data, flags)
        view = memoryview(data).cast("B")
        sent = self.send(view, flags)
        if sent < len(view):
            raise _would_block(f"sendall (sent {sent} of {len(view)} bytes)")

    def sendto(self, data, flags_or_addr, addr=None):
        if self._stack_side is None:
            return super().sendto(data, flags_or_addr) if addr is None else super().sendto(data, flags_or_addr, addr)
        addr = flags_or_addr if addr is None else addr
        if self._kind() != _socket_module.SOCK_DGRAM:
            return self.send(data)
        if len(self._stack_side) < 3:
            self.bind(("0.0.0.0" if self._bound is None else self._bound[0], 0))
        h = self._handle_or_raise("sendto")
        n = h.stack.udp_sendto(h.handle, data, (_ipconv.literal(addr[0]), int(addr[1])))
        h.loop._selector.handed(h.stack)
        return n

    def shutdown(self, how):
        if self._stack_side is None:
            return super().shutdown(how)
        h = self._handle_or_raise("shutdown")
        if h.kind == _socket_module.SOCK_STREAM and not h.listening:
            h.stack.tcp_shutdown(h.handle, how)
            h.loop._selector.handed(h.stack)

    def close(self):
        side, finalizer = self._stack_side, self._finalizer
        companions, self._companions = self._companions, ()
        for _, finalizer_of_h in companions:
            finalizer_of_h()            # releases and closes that stack listener
        if side is not None:
            if finalizer is not None and finalizer.alive:
                finalizer()             # releases and closes the stack handle, once
            self._stack_side = side[:2] + (None,)
        super().close()

    def getsockname(self):
        if self._stack_side is None:
            return super().getsockname()
        side = self._stack_side
        if len(side) == 3 and side[2] is not None:
            h = side[2]
            if h.kind == _socket_module.SOCK_DGRAM:
                return h.stack.udp_getsockname(h.handle)
            return h.stack.tcp_endpoints(h.handle)[0]
        return self._bound or ("0.0.0.0", 0)

    def getpeername(self):
        if self._stack_side is None:
            return super().getpeername()
        h = self._handle_or_raise("getpeername")
        if self._peer is None or h.listening or h.connecting:
            raise _error(errno.ENOTCONN, "getpeername")
        return self._peer

    def setsockopt(self, level, optname, value, optlen=None):
        if self._stack_side is None:
            if optlen is None:
                super().setsockopt(level, optname, value)
            else:
                super().setsockopt(level, optname, value, optlen)
        self._options[(level, optname)] = value
        side = self._stack_side
        if side is not None and len(side) == 3 and side[2] is not None and side[2].kind == _socket_module.SOCK_STREAM \
                and not side[2].listening and (level, optname) in _TCP_FORWARDED:
            side[1].tcp_setsockopt(side[2].handle, _TCP_FORWARDED[(level, optname)], value)

    def getsockopt(self, level, optname, buflen=None):
        if self._stack_side is None:
            return super().getsockopt(level, optname) if buflen is None else super().getsockopt(level, optname, buflen)
        side = self._stack_side
        h = side[2] if len(side) == 3 else None
        if (level, optname) == (_socket_module.SOL_SOCKET, _socket_module.SO_ERROR):
            if h is None:
                return 0
            err, h.error = h.error, 0
            return err
        if (level, optname) == (_socket_module.SOL_SOCKET, _socket_module.SO_TYPE):
            return self._kind()
        if h is not None and h.kind == _socket_module.SOCK_STREAM and not h.listening and buflen is None \
                and (level, optname) in _TCP_FORWARDED:
            return h.stack.tcp_getsockopt(h.handle, _TCP_FORWARDED[(level, optname)])
        value = self._options.get((level, optname), 0)
        return int(value) if buflen is None and not isinstance(value, (bytes, bytearray)) else value

    def setblocking(self, flag):
        if self._stack_side is None:
            return super().setblocking(flag)
        self._timeout = None if flag else 0.0

    def settimeout(self, value):
        if self._stack_side is None:
            return super().settimeout(value)
        self._timeout = value

    def gettimeout(self):
        if self._stack_side is None:
            return super().gettimeout()
        return self._timeout

    def getblocking(self):
        if self._stack_side is None:
            return super().getblocking()
        return self._timeout != 0.0

    def set_inheritable(self, inheritable):
        if self._stack_side is None:
            return super().set_inheritable(inheritable)
        self._options["inheritable"] = bool(inheritable)     # no descriptor to pass on exec

    def get_inheritable(self):
        if self._stack_side is None:
            return super().get_inheritable()
        return self._options.get("inheritable", False)

    def dup(self):
        if self._stack_side is None:
            return super().dup()
        raise _error(errno.EOPNOTSUPP, "dup of a stack socket (it has no descriptor)")

    def __reduce__(self):
        raise TypeError(f"cannot pickle {self!r}")

    def wait_ready(self):
        """A future the loop's sock_* coroutines await: done at the socket's next stack event."""
        return self._handle_or_raise("wait").wait()

    def __repr__(self):
        if self._stack_side is None:
            return super().__repr__()
        kind = "SOCK_STREAM" if self._kind() == _socket_module.SOCK_STREAM else "SOCK_DGRAM"
        try:
            where = f" laddr={self.getsockname()}"
        except OSError:
            where = ""
        if self._peer is not None:
            where += f" raddr={self._peer}"
        side = self._stack_side
        if len(side) == 3 and side[2] is None:
            where += " closed"
        return f"<aiorusty.StackSocket stack {kind}{where}>"


_TCP_FORWARDED = {
    (_socket_module.IPPROTO_TCP, _socket_module.TCP_NODELAY): "nodelay",
    (_socket_module.SOL_SOCKET, _socket_module.SO_KEEPALIVE): "keepalive",
}


def is_stack_socket(sock):
    """True for a StackSocket (by its real type: a Mock(spec=socket.socket) made while the
    switch is on passes isinstance and must still take asyncio's path)."""
    return issubclass(type(sock), StackSocket)


def on_stack(sock):
    """True for a StackSocket that lives on a stack."""
    return issubclass(type(sock), StackSocket) and sock._stack_side is not None


def _close_released(h):
    """weakref.finalize of a StackSocket: its stack handle is released and closed exactly once."""
    h.release()
    _close_handle(h)


def _source_ip(loop, stack, dest):
    from .loop import _source_address
    return _source_address(stack, dest)


def _reduce_kernel_socket(sock):
    if sock.on_stack:
        raise TypeError(f"{sock!r} lives on a user-space stack and cannot be passed to another process")
    return reduction._reduce_socket(sock)


# A StackSocket still on the kernel crosses to worker processes as a kernel socket.
reduction.register(StackSocket, _reduce_kernel_socket)


def use_stack_sockets(enable=True):
    """Make socket.socket() create StackSockets (enable=False restores the kernel class).

    Process-wide and opt-in: afterwards AF_INET sockets that libraries create
    bind and connect on the stack of the running aiorusty loop when its
    routing rule says so, and stay kernel sockets otherwise. Also set by
    AIORUSTY_SOCKETS=1 when an aiorusty loop is made."""
    _socket_module.socket = StackSocket if enable else _KernelSocket


def stack_sockets_enabled():
    return _socket_module.socket is StackSocket


def apply_env():
    """Turn the switch on when AIORUSTY_SOCKETS asks for it (1/yes/true/on)."""
    value = os.environ.get(ENV_SWITCH, "").strip().lower()
    if value in ("1", "yes", "true", "on", "stack"):
        use_stack_sockets(True)
    elif value not in ("", "0", "no", "false", "off", "kernel"):
        raise ValueError(f"{ENV_SWITCH}={value!r}: expected 1 (library sockets on the stack) or 0")
