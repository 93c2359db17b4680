"""ViewProtocol: an opt-in protocol that receives memoryviews instead of new bytes objects.

Owns: the protocol class and the lifetime rule of the views it receives.

    class Handler(aiorusty.ViewProtocol):
        def view_received(self, view):     # a memoryview, valid only during this call
            self.parser.feed(view)          # parse it, or copy what you keep: bytes(view[a:b])

On a stack transport the view is the TCP receive ring itself
(rusty_tcp_peek): no copy and no bytes object per read; the bytes are released
to the stack when view_received returns (rusty_tcp_consume).

Lifetime rule, enforced: the view is released when view_received returns, so
a protocol that stored it gets ValueError on its next use. A slice or another
memoryview made from it and kept past the call is detected (the view buffer is
still referenced): the loop reports it through its exception handler and moves
the connection to a fresh ring (rusty_tcp_rx_detach), so the kept view is never
overwritten behind its owner's back.

On any other transport (stock asyncio, kernel sockets) data_received() wraps
each bytes object in a memoryview, calls view_received and releases the view
the same way, so one protocol class runs on both.
"""

import asyncio

__all__ = ["ViewProtocol"]


class ViewProtocol(asyncio.Protocol):
    """asyncio.Protocol whose data arrives as memoryviews valid during view_received()."""

    def view_received(self, view):
        raise NotImplementedError

    def data_received(self, data):
        with memoryview(data) as view:
            self.view_received(view)
