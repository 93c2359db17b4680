"""TransportSocket: what transport.get_extra_info('socket') returns for a stack transport.

Owns: a small socket-like view of one stack socket handle, with the attributes
and calls asyncio code and libraries use on a transport's socket (family, type,
proto, fileno, getsockname, getpeername, getsockopt, setsockopt). TCP_NODELAY
and SO_KEEPALIVE are forwarded to the stack's connection and read back from it
(Stack.tcp_setsockopt / tcp_getsockopt); other options are remembered and read
back, as a kernel socket would echo them.
There is no file descriptor: fileno() is -1, like a closed socket, so code that
would hand it to select()/epoll fails loudly instead of watching the wrong fd.
"""

import errno
import socket

__all__ = ["TransportSocket"]

_FORWARDED = {
    (socket.IPPROTO_TCP, socket.TCP_NODELAY): "nodelay",
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE): "keepalive",
}


class TransportSocket:
    """A socket-like object for one stack socket (the same object on every get_extra_info call)."""

    family = socket.AF_INET

    def __init__(self, transport, type_, proto):
        self._transport = transport
        self.type = type_
        self.proto = proto
        self._options = {}

    def fileno(self):
        return -1

    def getsockname(self):
        name = self._transport.get_extra_info("sockname")
        if name is None:
            raise OSError(errno.EBADF, "stack socket is closed")
        return name

    def getpeername(self):
        name = self._transport.get_extra_info("peername")
        if name is None:
            raise OSError(errno.ENOTCONN, "stack socket is not connected")
        return name

    def setsockopt(self, level, optname, value, optlen=None):
        key = (level, optname)
        name = _FORWARDED.get(key)
        if name is not None and self.type == socket.SOCK_STREAM:
            self._transport._setsockopt(name, value)
        self._options[key] = value

    def getsockopt(self, level, optname, buflen=None):
        name = _FORWARDED.get((level, optname))
        if name is not None and self.type == socket.SOCK_STREAM and buflen is None:
            value = self._transport._getsockopt(name)   # what the stack's connection does
            if value is not None:
                return value
        value = self._options.get((level, optname), 0)
        return int(value) if buflen is None and not isinstance(value, (bytes, bytearray)) else value

    def gettimeout(self):
        return 0.0

    def getblocking(self):
        return False

    def __repr__(self):
        kind = "SOCK_STREAM" if self.type == socket.SOCK_STREAM else "SOCK_DGRAM"
        try:
            where = f" laddr={self.getsockname()}"
        except OSError:
            where = " closed"
        return f"<aiorusty.TransportSocket AF_INET {kind}{where}>"
