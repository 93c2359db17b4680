"""RustyEventLoop: asyncio's Unix selector loop with the user-space stack folded into select().

Owns: building the stack from the configuration, handing asyncio a
RustySelector (aiorusty._selector) that polls it every tick, and routing
create_datagram_endpoint / create_connection / create_server between the stack
and the kernel. Not: the tick itself (_selector), transports (transports/),
Server objects (server.py), the stack (aiorusty.tcp).

Everything else - timers, call_soon(_threadsafe), signals, subprocesses,
executors, kernel sockets, sock_* calls, DNS - is stock asyncio, inherited
unchanged. With no interface configured the loop *is* a stock selector loop
(no wrapper selector, no stack) and logs that once at debug level.

Routing rule (IPv4 only; the stack has no IPv6):

  * `sock=` given -> where the socket is: a StackSocket on a stack stays
    there; a kernel listening socket bound to the wildcard or to a stack's
    address is served on the kernel and also gets stack listeners on its port
    (aiorusty._sockmethods); any other socket -> the kernel.
  * An IPv6/Unix family or address, or a host that does not resolve to IPv4
    -> the kernel, by calling asyncio's own method unchanged.
  * A local address (server host, local_addr) that is one of the stack's
    interface addresses -> the stack. A server host name is resolved as a
    client's would be, so 'localhost' goes where a client to it goes.
  * A wildcard (None, '', '0.0.0.0'):
      - create_server: the stack AND the kernel, so the app stays reachable
        on localhost; one asyncio.Server holds both listeners, and with
        port=0 the kernel picks the port and the stack listens on the same.
      - create_datagram_endpoint local_addr with no remote_addr -> the stack.
  * A destination (create_connection host, datagram remote_addr, names are
    resolved first) that Stack.route() says is one of its addresses or
    reachable through an interface -> the stack, unless local_addr pins a
    specific address the stack does not own -> the kernel. Loopback
    (127.0.0.0/8) is reachable only when a stack owns the address: a default
    gateway does not carry it. A connected
    datagram endpoint without a local address binds the route's source
    address, as connect() does on the kernel.
  * Anything else -> the kernel.
    (A library that opens and connects its own socket and passes sock= -
    aiohttp's ClientSession, through aiohappyeyeballs - reaches the stack
    with the switch on: aiorusty.sockets.use_stack_sockets.)
  * A host list given to create_server is split: stack addresses on the
    stack, the others on the kernel, in one Server.

With several stacks on one loop (stack=[a, b]: tests drive both ends of a
cable this way) a local address goes to the stack owning it and a
destination to the first stack with a link towards it, else its owner.
`loop.route(ip)` returns the decision ('stack' or 'kernel') for a resolved
IPv4 destination so the rule can be checked directly.
"""

import asyncio
import errno
import ipaddress
import logging
import socket
import ssl as _ssl
import sys

from . import _ipv4 as _ipconv
from . import config as _config
from . import sockets as _sockets
from ._selector import RustySelector
from ._sockmethods import SockMethods

__all__ = ["RustyEventLoop"]

log = logging.getLogger("aiorusty.loop")

_WILDCARDS = (None, "", "0.0.0.0")
_Base = asyncio.SelectorEventLoop       # asyncio.unix_events._UnixSelectorEventLoop on Unix


_ipv4 = _ipconv.literal               # host as a normalised IPv4 literal, or None


def _port_number(port, type_):
    """A port as asyncio takes it (an int, a numeric string or a service name, through
    getaddrinfo there) as the int the stack takes; None is 0."""
    if port is None or isinstance(port, int):
        return port or 0
    if isinstance(port, (str, bytes)):
        name = port.decode() if isinstance(port, bytes) else port
        if name.isdigit():
            return int(name)
        try:
            return socket.getservbyname(name, "udp" if type_ == socket.SOCK_DGRAM else "tcp")
        except OSError:
            raise socket.gaierror(socket.EAI_SERVICE, f"Servname not supported for ai_socktype: {port!r}") from None
    raise TypeError(f"port must be an int or a str, not {type(port).__name__}")


def _source_address(stack, dest):
    """The interface address the stack sends to dest from (longest prefix, else a gateway's)."""
    best = _source_interface(stack, dest)
    return str(best.ip.ip) if best is not None else "0.0.0.0"


def _source_interface(stack, dest):
    """The Interface of stack that dest routes through (longest prefix, else one with a gateway), or None."""
    addr = ipaddress.IPv4Address(dest)
    best = None
    for iface in stack.interfaces:
        if iface.ip is not None and addr in iface.ip.network:
            if best is None or iface.ip.network.prefixlen > best.ip.network.prefixlen:
                best = iface
    if best is None:
        best = next((i for i in stack.interfaces if i.gateway is not None and i.ip is not None), None)
    return best


class RustyEventLoop(SockMethods, _Base):
    """An asyncio event loop whose sockets on the configured interfaces run on the user-space stack."""

    # Until asyncio's __init__ runs: a loop whose setup failed (a bad setting, a
    # device that would not open) is closed, so BaseEventLoop.__del__ finds the
    # attribute it checks and says nothing after the error was raised.
    _closed = True

    _kernel_only_warned = False

    def __init__(self, interfaces=None, *, busy_poll_us=None, stack=None, selector=None, **stack_options):
        cfg = _config.load(interfaces, busy_poll_us=busy_poll_us, **stack_options)
        _sockets.apply_env()
        self._rusty_config = cfg
        # stack=: a Stack (or several, e.g. both ends of a test cable) made by the
        # caller, who keeps ownership; otherwise one Stack from the interfaces.
        stacks = [] if stack is None else list(stack) if isinstance(stack, (list, tuple)) else [stack]
        own = not stacks
        if own and cfg.interfaces:
            from .tcp import Stack
            stacks = [Stack(cfg.interfaces, **cfg.stack_options)]
        self._stacks = stacks
        self._stack = stacks[0] if stacks else None
        if stacks:
            try:
                selector = RustySelector(stacks, cfg.busy_poll_us, inner=selector, close_stacks=own)
            except BaseException:
                if own:
                    stacks[0].close()
                raise
        super().__init__(selector)
        if stacks:
            self._selector.attach(self)
            log.debug("aiorusty loop on the user-space stack: %s (busy-poll %d us)",
                      "; ".join(map(str, cfg.interfaces)) or f"{len(stacks)} given stack(s)", cfg.busy_poll_us)
        else:
            log.debug("aiorusty loop with no interface configured (set %s or pass interfaces=): "
                      "a plain asyncio loop, every address goes to the kernel", _config.ENV_IFACE)

    # -- the stack ----------------------------------------------------------------

    @property
    def stack(self):
        """The aiorusty.tcp.Stack this loop polls (stats(), ...), or None without interfaces."""
        return self._stack

    def add_interface(self, spec):
        """Attach one more interface to the running stack."""
        if self._stack is None:
            raise RuntimeError("this loop has no user-space stack (it was created without interfaces)")
        result = self._stack.add_interface(spec)
        self._selector.refresh_fds()
        return result

    @property
    def stacks(self):
        """Every stack this loop polls (loop.stack is the first)."""
        return tuple(self._stacks)

    def _stack_register(self, stack, handle, transport):
        self._selector.transports[id(stack)][handle] = transport

    def _stack_unregister(self, stack, handle):
        if self._selector is not None:
            self._selector.transports[id(stack)].pop(handle, None)

    def __repr__(self):
        where = "no stack" if self._stack is None else f"stack {len(self._rusty_config.interfaces)} iface(s)"
        return f"<{type(self).__name__} running={self.is_running()} closed={self.is_closed()} {where}>"

    # -- routing ----------------------------------------------------------------------

    def route(self, ip):
        """'stack' or 'kernel': where a resolved IPv4 address (local or destination) is served."""
        return "stack" if self._stack_for_dest(_ipv4(ip)) is not None else "kernel"

    def _stack_for_local(self, ip):
        """The stack owning local address ip, or None."""
        if ip is not None:
            for st in self._stacks:
                if st.route(ip) == 1:
                    return st
        return None

    def _stack_for_dest(self, ip):
        """The stack to send to ip from: one with a link towards it first, then one owning it.
        A loopback address (127.0.0.0/8) is the kernel's unless a stack owns it: a stack's
        default gateway must not carry 'localhost'."""
        if ip is None:
            return None
        if ip.startswith("127."):
            return self._stack_for_local(ip)
        owner = None
        for st in self._stacks:
            r = st.route(ip)
            if r == 2:
                return st
            if r == 1 and owner is None:
                owner = st
        return owner

    async def _resolve_v4(self, addr, type_):
        """(ipv4, port) for a (host, port) tuple, or None when the kernel must handle it."""
        if not isinstance(addr, tuple) or len(addr) != 2:
            return None
        host, port = addr
        ip = _ipv4(host)
        if ip is not None or host in _WILDCARDS:
            return (ip if ip is not None else "0.0.0.0", _port_number(port, type_))
        if not isinstance(host, str) or ":" in host:
            return None
        try:
            infos = await self.getaddrinfo(host, port, family=socket.AF_INET, type=type_)
        except OSError:
            return None                 # let asyncio raise its own resolution error
        return infos[0][4][:2] if infos else None

    async def _datagram_route(self, local_addr, remote_addr, family, sock):
        """(stack, local, remote) resolved when the endpoint goes to a stack, else None."""
        if self._stack is None or sock is not None or family not in (0, socket.AF_INET):
            return None
        if local_addr is None and remote_addr is None:
            return None
        local = remote = None
        if local_addr is not None:
            local = await self._resolve_v4(local_addr, socket.SOCK_DGRAM)
            if local is None:
                return None
        if remote_addr is not None:
            remote = await self._resolve_v4(remote_addr, socket.SOCK_DGRAM)
            if remote is None:
                return None
        if local is not None and local[0] != "0.0.0.0":
            stack = self._stack_for_local(local[0])
        elif remote is not None:
            stack = self._stack_for_dest(remote[0])
        else:
            stack = self._stack            # a wildcard local address alone
        return None if stack is None else (stack, local, remote)

    # -- UDP ----------------------------------------------------------------------------

    async def create_datagram_endpoint(self, protocol_factory, local_addr=None, remote_addr=None, **kw):
        sock = kw.get("sock")
        if _sockets.on_stack(sock):
            return await self._stack_datagram_on_socket(protocol_factory, local_addr, remote_addr, **kw)
        decided = await self._datagram_route(local_addr, remote_addr, kw.get("family", 0), kw.get("sock"))
        if decided is None:
            return await super().create_datagram_endpoint(protocol_factory, local_addr, remote_addr, **kw)
        stack, local, remote = decided
        from .transports.datagram import StackDatagramTransport, socket_options
        options = socket_options(**kw)
        ip, port = local if local is not None else ("0.0.0.0", 0)
        if remote is not None and ip == "0.0.0.0":
            ip = _source_address(stack, remote[0])     # what connect() does on the kernel
        handle = stack.udp_bind(ip, port)
        try:
            protocol = protocol_factory()
            waiter = self.create_future()
            transport = StackDatagramTransport(self, stack, handle, protocol, remote, waiter, options=options)
        except BaseException:
            stack.udp_close(handle)
            raise
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    async def _stack_datagram_on_socket(self, protocol_factory, local_addr, remote_addr, *, sock, **kw):
        from .transports.datagram import StackDatagramTransport
        if sock.type != socket.SOCK_DGRAM:
            raise ValueError(f"A datagram socket was expected, got {sock!r}")
        if local_addr or remote_addr or any(kw.get(k) for k in ("family", "proto", "flags", "reuse_port",
                                                                  "allow_broadcast")):
            raise ValueError("socket modifier keyword arguments can not be used when sock is specified.")
        self._check_stack_sock(sock)
        peer = sock._peer
        if len(sock._stack_side) < 3:
            sock.bind(("0.0.0.0", 0))
        stack, handle = sock._take_handle()
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = StackDatagramTransport(self, stack, handle, protocol, peer, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    # -- TCP -------------------------------------------------------------------------------

    async def create_connection(self, protocol_factory, host=None, port=None, **kw):
        sock = kw.get("sock")
        if _sockets.on_stack(sock):
            if host is not None or port is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            tls = {k: kw.get(k) for k in ("ssl", "server_hostname", "ssl_handshake_timeout", "ssl_shutdown_timeout")}
            return await self._adopt_stream(protocol_factory, sock, server_side=False, **tls)
        if self._stack is not None and kw.get("sock") is None and kw.get("family", 0) in (0, socket.AF_INET):
            dest = await self._resolve_v4((host, port), socket.SOCK_STREAM) if host is not None else None
            local = kw.get("local_addr")
            stack = None
            if dest is not None:
                lip = _ipv4(local[0]) if local is not None else None
                if lip is not None and lip != "0.0.0.0":
                    stack = self._stack_for_local(lip)      # a pinned source address decides
                elif local is None or lip == "0.0.0.0" or local[0] in _WILDCARDS:
                    stack = self._stack_for_dest(dest[0])
            if stack is not None:
                from .server import create_stack_connection
                return await create_stack_connection(self, stack, protocol_factory, dest, host, **kw)
        return await super().create_connection(protocol_factory, host, port, **kw)

    async def create_server(self, protocol_factory, host=None, port=None, **kw):
        sock = kw.get("sock")
        if host is None and port is None and sock is None:
            raise ValueError("Neither host/port nor sock were specified")
        if sock is not None and self._stack is not None:
            if host is not None or port is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            if _sockets.on_stack(sock):
                return await self._stack_server_on_socket(protocol_factory, **kw)
            if sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM:
                server = await self._kernel_server_with_stack(protocol_factory, **kw)
                if server is not None:
                    return server
        if self._stack is not None and kw.get("sock") is None and kw.get("family", 0) in (0, socket.AF_INET):
            hosts = [host] if isinstance(host, str) or host is None else list(host)
            wild = [h for h in hosts if h in _WILDCARDS]
            # A name is resolved as a client's would be, so a server and its clients on
            # this loop meet on the same side ('localhost' included).
            mine = []
            for h in hosts:
                if h not in _WILDCARDS:
                    ip = _ipv4(h)
                    if ip is None and isinstance(h, str) and ":" not in h:
                        found = await self._resolve_v4((h, 0), socket.SOCK_STREAM)
                        ip = found[0] if found is not None else None
                    mine.append((self._stack_for_local(ip), h, ip))
            if wild or any(st is not None for st, _, _ in mine):
                return await self._stack_create_server(protocol_factory, hosts, wild, mine, port, **kw)
        if self._stack is not None:
            self._warn_kernel_only(host, kw)
        return await super().create_server(protocol_factory, host, port, **kw)

    def _warn_kernel_only(self, host, kw):
        """Once per loop: interfaces are configured, yet a server listens on the kernel only
        (an app that binds 127.0.0.1, or passes its own socket), so peers of the stack
        reach nothing and their connections are reset."""
        if self._kernel_only_warned:
            return
        self._kernel_only_warned = True
        addrs = ", ".join(str(i.ip.ip) for st in self._stacks for i in st.interfaces if i.ip is not None)
        what = "a socket passed as sock=" if kw.get("sock") is not None else f"host {host!r}"
        log.warning("a server listens on the kernel only (%s), while the stack serves %s: connections to the "
                    "stack's addresses do not reach it; listen on one of them, or on 0.0.0.0 for both", what, addrs)

    async def _stack_create_server(self, protocol_factory, hosts, wild, mine, port, *, backlog=100, ssl=None,
                                   start_serving=True, ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                                   reuse_port=None, **kw):
        from .server import add_stack_listeners, new_server
        port = _port_number(port, socket.SOCK_STREAM)
        if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
            raise TypeError(f"ssl argument must be an SSLContext or None, got {ssl!r}")
        on_stack = [(st, ip) for st, _, ip in mine if st is not None]
        if wild:                        # every stack, all its addresses
            on_stack += [(st, "0.0.0.0") for st in self._stacks]
        kernel_hosts = wild + [h for st, h, _ in mine if st is None]
        if kernel_hosts:
            extra = {"ssl_handshake_timeout": ssl_handshake_timeout}
            if ssl_shutdown_timeout is not None:
                extra["ssl_shutdown_timeout"] = ssl_shutdown_timeout
            server = await super().create_server(
                protocol_factory, kernel_hosts[0] if len(kernel_hosts) == 1 else kernel_hosts, port,
                backlog=backlog, ssl=ssl, start_serving=False, reuse_port=reuse_port, **extra, **kw)
            if not port:
                port = server.sockets[0].getsockname()[1]
        else:
            server = new_server(self, protocol_factory, backlog, ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
        try:
            add_stack_listeners(self, server, on_stack, port, backlog, bool(reuse_port))
        except BaseException:
            server.close()
            raise
        if start_serving:
            server._start_serving()
            await asyncio.sleep(0)      # as asyncio does: let the listeners start
        return server

    def _start_serving(self, protocol_factory, sock, sslcontext=None, server=None, *args, **kw):
        from .server import StackListenSocket
        if isinstance(sock, StackListenSocket):
            # asyncio.Server passes (backlog, ssl_handshake_timeout[, ssl_shutdown_timeout]) on.
            rest = list(args) + [kw.get(k) for k in ("backlog", "ssl_handshake_timeout", "ssl_shutdown_timeout")
                                 if k in kw]
            sock._start(protocol_factory, server, sslcontext, *rest[1:3])
            return
        return super()._start_serving(protocol_factory, sock, sslcontext, server, *args, **kw)

    def _stop_serving(self, sock):
        from .server import StackListenSocket
        if isinstance(sock, StackListenSocket):
            sock.close()
            return
        return super()._stop_serving(sock)


if sys.platform == "win32":                                   # pragma: no cover
    raise ImportError("aiorusty needs Linux (user-space NIC drivers, epoll)")
