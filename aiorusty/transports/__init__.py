"""Transports on the user-space stack: asyncio's Transport contract over stack socket handles.

Owns: the transport classes (datagram.py for UDP, stream.py for TCP when the
TCP layer is present), the socket-like object get_extra_info('socket') returns
(_trsock.py) and their shared close/error path (_base.py). Not: routing or
creating them (aiorusty.loop, aiorusty.server), the stack (aiorusty.tcp).

Events reach a transport through _stack_event(type, flags, arg, arg2), called
by the loop's selector once per stack event, inside the contextvars context
captured when the transport was created; a TCP READABLE event (most of them)
calls the transport's _reader(transport) instead, one Python frame less, so
everything that stands on a TCP handle has a _reader that returns when it may
not read (bench/loop_pair.py: 3.58 -> 3.33 us per request and response).
"""

from .datagram import StackDatagramTransport
from .stream import StackStreamTransport
from .zerocopy import ViewProtocol

__all__ = ["StackDatagramTransport", "StackStreamTransport", "ViewProtocol"]
