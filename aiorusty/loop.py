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

  * `sock=` given, an IPv6/Unix family or address, or a host that does not
    resolve to IPv4 -> the kernel, by calling asyncio's own method unchanged.
  * The address is one of the stack's interface addresses -> the stack.
  * A wildcard (None, '', '0.0.0.0'):
      - create_server: the stack AND the kernel (the app stays reachable on
        localhost); one Server holds both listeners.
      - create_datagram_endpoint local_addr with no remote_addr -> the stack.
  * A destination (create_connection host, datagram remote_addr) that
    Stack.route() says is local or reachable through an interface -> the
    stack, unless a local_addr pins a specific non-stack address -> kernel.
  * Anything else -> the kernel.

`loop.route(host)` returns the decision ('stack', 'kernel') for a resolved
IPv4 destination so the rule can be checked directly.
"""

import asyncio
import errno
import ipaddress
import logging
import socket
import sys

from . import config as _config
from ._selector import RustySelector

__all__ = ["RustyEventLoop"]

log = logging.getLogger("aiorusty.loop")

_WILDCARDS = (None, "", "0.0.0.0")
_Base = asyncio.SelectorEventLoop       # asyncio.unix_events._UnixSelectorEventLoop on Unix


def _ipv4(host):
    """host as a normalised IPv4 literal, or None when it is not one."""
    try:
        return str(ipaddress.IPv4Address(host))
    except (ipaddress.AddressValueError, ValueError, TypeError):
        return None


class RustyEventLoop(_Base):
    """An asyncio event loop whose sockets on the configured interfaces run on the user-space stack."""

    def __init__(self, interfaces=None, *, busy_poll_us=None, stack=None, selector=None, **stack_options):
        cfg = _config.load(interfaces, busy_poll_us=busy_poll_us, **stack_options)
        self._rusty_config = cfg
        self._stack = None
        own = stack is None
        if stack is None and cfg.interfaces:
            from .tcp import Stack
            stack = Stack(cfg.interfaces, **cfg.stack_options)
        if stack is not None:
            try:
                selector = RustySelector(stack, cfg.busy_poll_us, inner=selector, close_stack=own)
            except BaseException:
                if own:
                    stack.close()
                raise
            self._stack = stack
        super().__init__(selector)
        if self._stack is not None:
            self._selector.attach(self)
            log.debug("aiorusty loop on the user-space stack: %s (busy-poll %d us)",
                      "; ".join(map(str, cfg.interfaces)) or "given Stack", cfg.busy_poll_us)
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

    def _stack_register(self, handle, transport):
        self._selector.transports[handle] = transport

    def _stack_unregister(self, handle):
        if self._selector is not None:
            self._selector.transports.pop(handle, None)

    def _stack_note_activity(self):
        self._selector.note_activity()

    def __repr__(self):
        where = "no stack" if self._stack is None else f"stack {len(self._rusty_config.interfaces)} iface(s)"
        return f"<{type(self).__name__} running={self.is_running()} closed={self.is_closed()} {where}>"

    # -- routing ----------------------------------------------------------------------

    def route(self, ip):
        """'stack' or 'kernel': where a resolved IPv4 address (local or destination) is served."""
        ip = _ipv4(ip)
        if self._stack is None or ip is None:
            return "kernel"
        return "stack" if self._stack.route(ip) else "kernel"

    def _is_stack_address(self, ip):
        return self._stack is not None and ip is not None and self._stack.route(ip) == 1

    async def _resolve_v4(self, addr, type_):
        """(ipv4, port) for a (host, port) tuple, or None when the kernel must handle it."""
        if not isinstance(addr, tuple) or len(addr) != 2:
            return None
        host, port = addr
        ip = _ipv4(host)
        if ip is not None or host in _WILDCARDS:
            return (ip if ip is not None else "0.0.0.0", port)
        if not isinstance(host, str) or ":" in host:
            return None
        try:
            infos = await self.getaddrinfo(host, port, family=socket.AF_INET, type=type_)
        except OSError:
            return None                 # let asyncio raise its own resolution error
        return infos[0][4][:2] if infos else None

    async def _datagram_route(self, local_addr, remote_addr, family, sock):
        """((local, remote) resolved) when the endpoint goes to the stack, else None."""
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
            return (local, remote) if self._is_stack_address(local[0]) else None
        if remote is not None:
            return (local, remote) if self.route(remote[0]) == "stack" else None
        return (local, None)            # a wildcard local address alone

    # -- UDP ----------------------------------------------------------------------------

    async def create_datagram_endpoint(self, protocol_factory, local_addr=None, remote_addr=None, **kw):
        decided = await self._datagram_route(local_addr, remote_addr, kw.get("family", 0), kw.get("sock"))
        if decided is None:
            return await super().create_datagram_endpoint(protocol_factory, local_addr, remote_addr, **kw)
        local, remote = decided
        from .transports.datagram import StackDatagramTransport
        ip, port = local if local is not None else ("0.0.0.0", 0)
        handle = self._stack.udp_bind(ip, port)
        try:
            protocol = protocol_factory()
            waiter = self.create_future()
            transport = StackDatagramTransport(self, handle, protocol, remote, waiter)
        except BaseException:
            self._stack.udp_close(handle)
            raise
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    # -- TCP (routing in place; stack transports arrive with the TCP layer) --------------

    def _stack_has_tcp(self):
        return self._stack is not None and hasattr(self._stack, "tcp_listen")

    async def create_connection(self, protocol_factory, host=None, port=None, **kw):
        if self._stack is not None and kw.get("sock") is None and kw.get("family", 0) in (0, socket.AF_INET):
            dest = await self._resolve_v4((host, port), socket.SOCK_STREAM) if host is not None else None
            local = kw.get("local_addr")
            pinned = local is not None and _ipv4(local[0]) not in (None, "0.0.0.0") \
                and not self._is_stack_address(_ipv4(local[0]))
            if dest is not None and not pinned and self.route(dest[0]) == "stack":
                return await self._stack_create_connection(protocol_factory, dest, **kw)
        return await super().create_connection(protocol_factory, host, port, **kw)

    async def create_server(self, protocol_factory, host=None, port=None, **kw):
        if self._stack is not None and kw.get("sock") is None and kw.get("family", 0) in (0, socket.AF_INET):
            hosts = [host] if isinstance(host, str) or host is None else list(host)
            on_stack = [h for h in hosts if h in _WILDCARDS or self._is_stack_address(_ipv4(h))]
            if on_stack:
                return await self._stack_create_server(protocol_factory, hosts, on_stack, port, **kw)
        return await super().create_server(protocol_factory, host, port, **kw)

    async def _stack_create_connection(self, protocol_factory, dest, **kw):
        if not self._stack_has_tcp():
            raise OSError(errno.ENOSYS, f"connection to {dest[0]}:{dest[1]} routes through the user-space "
                          "stack, whose TCP layer is not available in this build")
        from .server import create_stack_connection
        return await create_stack_connection(self, protocol_factory, dest, **kw)

    async def _stack_create_server(self, protocol_factory, hosts, on_stack, port, **kw):
        if not self._stack_has_tcp():
            kernel = [h for h in hosts if h not in on_stack or h in _WILDCARDS]
            if not kernel:
                raise OSError(errno.ENOSYS, f"server on {on_stack} routes to the user-space stack, "
                              "whose TCP layer is not available in this build")
            log.debug("no TCP on the stack yet: server on %s listens on the kernel only", kernel)
            return await super().create_server(protocol_factory, kernel if len(kernel) > 1 else kernel[0],
                                               port, **kw)
        from .server import create_stack_server
        return await create_stack_server(self, protocol_factory, hosts, on_stack, port, **kw)


if sys.platform == "win32":                                   # pragma: no cover
    raise ImportError("aiorusty needs Linux (user-space NIC drivers, epoll)")
