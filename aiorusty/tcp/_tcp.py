"""Low-level TCP calls on a Stack (listen, connect, send, receive, close); mixed into Stack.

Owns: the thin Python face of the C TCP layer for tests and tools: handles are
the C socket handles (ints), errors become the OSError a kernel socket raises
(ConnectionRefusedError, ConnectionResetError, TimeoutError, BrokenPipeError)
through aiorusty._errors.check, and "would block" is None rather than an
exception. Not: asyncio transports (the loop's job), protocol logic (C).

Connect is non-blocking: tcp_connect returns a handle at once and a
RUSTY_EV_TCP_CONNECTED or RUSTY_EV_TCP_CLOSED event (from Stack.poll) follows.
"""

import errno
import socket

from .. import _ipv4
from .._errors import check
from .._rusty import ffi, lib

_CONNECT_HINTS = {
    errno.ENOBUFS: "the stack's TCP memory limit is used up: raise AIORUSTY_TCP_MEM or tcp_mem=",
    errno.EMFILE: "the stack's connection or socket limit is reached: raise AIORUSTY_MAX_TCP_CONNS / "
                  "AIORUSTY_MAX_SOCKETS or max_tcp_conns= / max_sockets=",
}

_LISTEN_HINTS = {
    errno.EADDRINUSE: "another listener overlaps this address and port: close it, or set reuse_port on "
                      "every listener that should share it",
}

STATES = ("CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
          "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT")

# setsockopt names accepted by tcp_setsockopt: the socket module's constants
# (times in seconds, as for a kernel socket) or the C option numbers (microseconds).
_SOCKOPTS = {
    getattr(socket, "TCP_NODELAY", -1): (lib.RUSTY_TCP_NODELAY, 1),
    getattr(socket, "SO_KEEPALIVE", -2): (lib.RUSTY_TCP_KEEPALIVE, 1),
    getattr(socket, "TCP_KEEPIDLE", -3): (lib.RUSTY_TCP_KEEPIDLE, 1_000_000),
    getattr(socket, "TCP_KEEPINTVL", -4): (lib.RUSTY_TCP_KEEPINTVL, 1_000_000),
    getattr(socket, "TCP_KEEPCNT", -5): (lib.RUSTY_TCP_KEEPCNT, 1),
    getattr(socket, "SO_SNDBUF", -6): (lib.RUSTY_TCP_SNDBUF, 1),
    getattr(socket, "SO_RCVBUF", -7): (lib.RUSTY_TCP_RCVBUF, 1),
}
_NAMES = {
    "nodelay": (lib.RUSTY_TCP_NODELAY, 1),
    "keepalive": (lib.RUSTY_TCP_KEEPALIVE, 1),
    "keepidle": (lib.RUSTY_TCP_KEEPIDLE, 1_000_000),
    "keepintvl": (lib.RUSTY_TCP_KEEPINTVL, 1_000_000),
    "keepcnt": (lib.RUSTY_TCP_KEEPCNT, 1),
    "sndbuf": (lib.RUSTY_TCP_SNDBUF, 1),
    "rcvbuf": (lib.RUSTY_TCP_RCVBUF, 1),
    "retries": (lib.RUSTY_TCP_RETRIES, 1),
}


_ip = _ipv4.to_int
_str_ip = _ipv4.to_str


class TcpApi:
    """TCP methods of aiorusty.tcp.Stack; they use self._ptr (the C stack)."""

    def _tcp_now(self, now_us):
        return self.now_us() if now_us is None else now_us

    def tcp_listen(self, ip, port, backlog=128, reuse_port=False):
        """A listening handle on ip (None: every address) and port (0: an ephemeral one).
        reuse_port is SO_REUSEPORT: listeners that all set it share the address and port,
        and each new connection goes to one of them by a hash of its 4-tuple."""
        out = ffi.new("uint32_t *")
        flags = lib.RUSTY_TCP_LISTEN_REUSEPORT if reuse_port else 0
        ret = lib.rusty_tcp_listen(self._ptr, _ip(ip), port, backlog, flags, out)
        check(ret, f"tcp listen {ip or '0.0.0.0'}:{port}", _LISTEN_HINTS.get(-ret))
        return out[0]

    def tcp_accept(self, lhandle):
        """A new connection's handle, or None when none is waiting."""
        out = ffi.new("uint32_t *")
        ret = lib.rusty_tcp_accept(self._ptr, lhandle, out)
        if ret == -errno.EAGAIN:
            return None
        check(ret, "tcp accept")
        return out[0]

    def tcp_connect(self, addr, src=None, now_us=None):
        """Start an active open to (ip, port); src is an ip or (ip, port). Returns the handle."""
        ip, port = addr
        src_ip, src_port = (src if isinstance(src, tuple) else (src, 0)) if src else (0, 0)
        out = ffi.new("uint32_t *")
        ret = lib.rusty_tcp_connect(self._ptr, _ip(src_ip), _ip(ip), port, src_port or 0, self._tcp_now(now_us), out)
        if ret < 0:
            if ret in (-errno.ENOBUFS, -errno.EMFILE):
                self.report_limit(self._limit_of(-ret))     # the warning comes with the first refusal
            check(ret, f"tcp connect {ip}:{port}", _CONNECT_HINTS.get(-ret))
        return out[0]

    def _limit_of(self, err):
        if err == errno.ENOBUFS:
            return lib.RUSTY_LIMIT_TCP_MEM
        full = self.stats()["sockets"] >= self.config()["max_sockets"]
        return lib.RUSTY_LIMIT_SOCKETS if full else lib.RUSTY_LIMIT_TCP_CONNS

    def tcp_send(self, h, data, now_us=None):
        """Bytes accepted into the send buffer (0 when it is full)."""
        ret = lib.rusty_tcp_send(self._ptr, h, ffi.from_buffer(data), len(data), self._tcp_now(now_us))
        if ret == -errno.EAGAIN:
            return 0
        return check(ret, "tcp send")

    def tcp_send_payload(self, h, payload, off=0, length=None, now_us=None):
        """Queue bytes [off, off+length) of a StaticPayload without copying them; returns
        the bytes accepted (0 when the payload queue is full; retry on WRITABLE)."""
        if length is None:
            length = len(payload) - off
        if off < 0 or length < 0 or off + length > len(payload):
            raise ValueError(f"range [{off}, {off + length}) outside a payload of {len(payload)} bytes")
        ret = lib.rusty_tcp_send_payload(self._ptr, h, payload._ptr, off, length, self._tcp_now(now_us))
        if ret == -errno.EAGAIN:
            return 0
        return check(ret, "tcp send payload")

    def tcp_peek(self, h):
        """A read-only memoryview of the first contiguous readable bytes, in place in the
        receive ring (no copy): valid until they are consumed (tcp_consume/tcp_recv) or
        the handle is closed. b'' at EOF, None when nothing is readable yet."""
        try:
            data, size = self._peek_out
        except AttributeError:
            data, size = self._peek_out = (ffi.new("const uint8_t **"), ffi.new("size_t *"))
        ret = lib.rusty_tcp_peek(self._ptr, h, data, size)
        if ret == -errno.EAGAIN:
            return None
        check(ret, "tcp peek")
        if ret == 0:
            return b""
        return memoryview(ffi.buffer(data[0], size[0])).toreadonly()

    def tcp_consume(self, h, n, now_us=None):
        """Release the first n readable bytes (after tcp_peek); opens the receive window."""
        check(lib.rusty_tcp_consume(self._ptr, h, n, self._tcp_now(now_us)), "tcp consume")

    def tcp_rx_detach(self, h):
        """After a tcp_peek view was kept past its use: the connection continues on a
        copy of its receive ring; returns the old ring (a cdata freed when collected),
        which the caller keeps alive as long as the view (weakref.finalize on it)."""
        out = ffi.new("uint8_t **")
        check(lib.rusty_tcp_rx_detach(self._ptr, h, out), "tcp rx detach")
        return ffi.gc(out[0], lib.rusty_tcp_ring_free)

    def tcp_recv(self, h, n=65536):
        """Up to n bytes; b'' at EOF; None when nothing is readable yet."""
        n = min(n, 1 << 20)
        buf = self._recv_buf if n <= len(self._recv_buf) else ffi.new("uint8_t[]", n)
        ret = lib.rusty_tcp_recv(self._ptr, h, buf, n)
        if ret == -errno.EAGAIN:
            return None
        check(ret, "tcp recv")
        return bytes(ffi.buffer(buf, ret))

    def tcp_shutdown(self, h, how=socket.SHUT_WR, now_us=None):
        check(lib.rusty_tcp_shutdown(self._ptr, h, how, self._tcp_now(now_us)), "tcp shutdown")

    def tcp_close(self, h, now_us=None):
        check(lib.rusty_tcp_close(self._ptr, h, self._tcp_now(now_us)), "tcp close")

    def tcp_abort(self, h, now_us=None):
        check(lib.rusty_tcp_abort(self._ptr, h, self._tcp_now(now_us)), "tcp abort")

    def tcp_info(self, h):
        out = ffi.new("struct rusty_tcp_info *")
        check(lib.rusty_tcp_get_info(self._ptr, h, out), "tcp info")
        info = {name: getattr(out, name) for name, _ in ffi.typeof("struct rusty_tcp_info").fields if name != "pad"}
        info["state"] = STATES[out.state] if out.state < len(STATES) else str(out.state)
        info["local"] = (_str_ip(out.local_ip), out.local_port)
        info["remote"] = (_str_ip(out.remote_ip), out.remote_port)
        return info

    def tcp_endpoints(self, h):
        """((local_ip, local_port), (remote_ip, remote_port)): tcp_info's addresses alone, for
        every new transport (no dict of every field)."""
        out = self._info_out
        check(lib.rusty_tcp_get_info(self._ptr, h, out), "tcp info")
        return (_str_ip(out.local_ip), out.local_port), (_str_ip(out.remote_ip), out.remote_port)

    def tcp_getsockopt(self, h, opt):
        """The value in force of 'nodelay' or 'keepalive' (or socket.TCP_NODELAY / SO_KEEPALIVE): 0 or 1."""
        key = _NAMES.get(opt) if isinstance(opt, str) else _SOCKOPTS.get(opt)
        out = ffi.new("int64_t *")
        check(lib.rusty_tcp_get_option(self._ptr, h, key[0] if key else -1, out), f"tcp getsockopt {opt!r}")
        return out[0]

    def tcp_setsockopt(self, h, opt, value):
        """opt: a name ('nodelay', 'keepidle', ...; times in seconds) or a socket module
        constant (socket.TCP_NODELAY, socket.TCP_KEEPIDLE, ...)."""
        key = _NAMES.get(opt) if isinstance(opt, str) else _SOCKOPTS.get(opt)
        if key is None:
            raise OSError(errno.ENOPROTOOPT, f"tcp setsockopt: unsupported option {opt!r}")
        copt, scale = key
        check(lib.rusty_tcp_set_option(self._ptr, h, copt, int(value * scale)), f"tcp setsockopt {opt!r}")
