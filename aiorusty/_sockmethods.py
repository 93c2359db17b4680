"""The loop's socket methods for StackSockets: sock_*, and handing a socket to a transport or a server.

Owns: RustyEventLoop's sock_connect, sock_accept, sock_recv, sock_recv_into,
sock_recvfrom, sock_recvfrom_into, sock_sendall, sock_sendto and
sock_sendfile for sockets on the stack (aiorusty.sockets.StackSocket), and
what create_connection / create_server / connect_accepted_socket /
create_datagram_endpoint do with one passed as sock=. A StackSocket left on
the kernel listening on the wildcard (anyio's default listener) gets stack
listeners on its port at its first sock_accept, which then accepts from both. A kernel socket takes
asyncio's own path, unchanged, except one: a kernel listening socket bound
to the wildcard or to an address a stack owns (bound before fork, or passed
to spawned workers, as uvicorn --workers and gunicorn do) also gets a stack
listener on its port, so each worker serves the stack's peers from its own
queue of the interface.
Not: routing destinations (loop.py), the socket object (sockets.py).

Each sock_* coroutine tries the call first and waits for the socket's next
stack event only when it would block, as asyncio's do with add_reader.
"""

import asyncio
import errno
import socket
from asyncio import exceptions

from .sockets import is_stack_socket
from .sockets import on_stack as _on_stack

__all__ = ["SockMethods"]


def _set_once(fut):
    if not fut.done():
        fut.set_result(None)


class SockMethods:
    """Mixed into RustyEventLoop (before asyncio's selector loop in the MRO)."""

    def _check_stack_sock(self, sock):
        if sock._stack_side[0] is not self:
            raise ValueError(f"{sock!r} lives on another loop's stack")
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")       # asyncio's check, in debug mode

    async def _until_ready(self, sock, call, *args):
        self._check_stack_sock(sock)
        while True:
            try:
                return call(*args)
            except BlockingIOError:
                await sock.wait_ready()

    async def sock_recv(self, sock, n):
        if not _on_stack(sock):
            return await super().sock_recv(sock, n)
        return await self._until_ready(sock, sock.recv, n)

    async def sock_recv_into(self, sock, buf):
        if not _on_stack(sock):
            return await super().sock_recv_into(sock, buf)
        return await self._until_ready(sock, sock.recv_into, buf)

    async def sock_recvfrom(self, sock, bufsize):
        if not _on_stack(sock):
            return await super().sock_recvfrom(sock, bufsize)
        return await self._until_ready(sock, sock.recvfrom, bufsize)

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        if not _on_stack(sock):
            return await super().sock_recvfrom_into(sock, buf, nbytes)
        return await self._until_ready(sock, sock.recvfrom_into, buf, nbytes)

    async def sock_sendto(self, sock, data, address):
        if not _on_stack(sock):
            return await super().sock_sendto(sock, data, address)
        return await self._until_ready(sock, sock.sendto, data, address)

    async def sock_sendall(self, sock, data):
        if not _on_stack(sock):
            return await super().sock_sendall(sock, data)
        self._check_stack_sock(sock)
        view = memoryview(data).cast("B")
        while view:
            try:
                view = view[sock.send(view):]
            except BlockingIOError:
                await sock.wait_ready()

    async def sock_connect(self, sock, address):
        if is_stack_socket(sock) and not sock.on_stack:
            resolved = await self._resolve_v4(address, sock._kind()) if sock._routable() else None
            if resolved is None or sock._route_connect(resolved[0]) is None:
                return await super().sock_connect(sock, address)
            address = resolved
        elif not _on_stack(sock):
            return await super().sock_connect(sock, address)
        err = sock.connect_ex(address)
        self._check_stack_sock(sock)
        while err in (errno.EINPROGRESS, errno.EALREADY):
            await sock.wait_ready()
            err = sock.connect_result()
        if err and err != errno.EISCONN:
            raise OSError(err, f"Connect call failed {address}")

    async def sock_accept(self, sock):
        if _on_stack(sock):
            return await self._until_ready(sock, sock.accept)
        companions = sock.stack_companions(self) if is_stack_socket(sock) else []
        if not companions:
            return await super().sock_accept(sock)
        return await self._accept_kernel_or_stack(sock, companions)

    async def _accept_kernel_or_stack(self, sock, companions):
        """sock_accept on a kernel wildcard listener that has stack listeners beside it:
        whichever has a connection first (the kernel's is tried first)."""
        while True:
            try:
                return sock.accept()
            except (BlockingIOError, InterruptedError):
                pass
            for h in companions:
                try:
                    return sock.accept_from(h)
                except BlockingIOError:
                    pass
            kernel_ready = self.create_future()
            fd = sock.fileno()
            self.add_reader(fd, _set_once, kernel_ready)
            waits = [h.wait() for h in companions]
            try:
                await asyncio.wait([kernel_ready, *waits], return_when=asyncio.FIRST_COMPLETED)
            finally:
                self.remove_reader(fd)
                for fut in (kernel_ready, *waits):
                    fut.cancel()

    async def sock_sendfile(self, sock, file, offset=0, count=None, *, fallback=True):
        if not _on_stack(sock):
            return await super().sock_sendfile(sock, file, offset, count, fallback=fallback)
        if not fallback:
            raise exceptions.SendfileNotAvailableError("a stack socket has no descriptor for os.sendfile")
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    # -- sockets handed to transports and servers --------------------------------------------

    async def _adopt_stream(self, protocol_factory, sock, *, server_side, ssl=None, server_hostname=None,
                            ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        from .server import adopt_connection
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        if not server_side and ssl and server_hostname is None:
            raise ValueError("You must set server_hostname when using ssl without a host")
        self._check_stack_sock(sock)
        stack, handle = sock._take_handle()
        return await adopt_connection(self, stack, handle, protocol_factory, ssl=ssl, server_side=server_side,
                                      server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
                                      ssl_shutdown_timeout=ssl_shutdown_timeout)

    async def connect_accepted_socket(self, protocol_factory, sock, **kw):
        if not _on_stack(sock):
            return await super().connect_accepted_socket(protocol_factory, sock, **kw)
        return await self._adopt_stream(protocol_factory, sock, server_side=True, **kw)

    async def _stack_server_on_socket(self, protocol_factory, sock, *, backlog=100, ssl=None,
                                      ssl_handshake_timeout=None, ssl_shutdown_timeout=None, start_serving=True,
                                      **kw):
        """create_server(sock=) for a StackSocket on the stack (bound, listening or not)."""
        from .server import StackListenSocket, new_server
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        self._check_stack_sock(sock)
        sock.listen(backlog)
        stack, handle = sock._take_handle()
        server = new_server(self, protocol_factory, backlog, ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
        server._sockets.append(StackListenSocket(self, stack, handle))
        return await self._serve(server, start_serving)

    async def _kernel_server_with_stack(self, protocol_factory, sock, *, backlog=100, start_serving=True, **kw):
        """create_server(sock=) for a kernel TCP socket: asyncio's server on it, plus a stack listener on
        its port when it is bound to the wildcard or to a stack's address; None when it is neither."""
        from .server import add_stack_listeners
        ip, port = sock.getsockname()[:2]
        if ip == "0.0.0.0":
            on_stack = [(st, "0.0.0.0") for st in self._stacks]
        else:
            st = self._stack_for_local(ip)
            on_stack = [(st, ip)] if st is not None else []
        if not on_stack or not port:
            return None
        server = await super().create_server(protocol_factory, sock=sock, backlog=backlog, start_serving=False,
                                             **kw)
        try:
            add_stack_listeners(self, server, on_stack, port, backlog,
                                bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)))
        except BaseException:
            server.close()
            raise
        return await self._serve(server, start_serving)

    async def _serve(self, server, start_serving):
        if start_serving:
            server._start_serving()
            await asyncio.sleep(0)      # as asyncio does: let the listeners start
        return server
