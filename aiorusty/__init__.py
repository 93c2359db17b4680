"""aiorusty - an asyncio event loop on an in-process user-space TCP/IP stack.

    aiorusty.run(main(), interfaces=["tap:rusty0,ip=10.0.0.2/24,host=10.0.0.1/24"])
    asyncio.run(main(), loop_factory=aiorusty.new_event_loop)   # 3.12+, reads AIORUSTY_IFACE
"""

from ._payload import StaticPayload
from .loop import RustyEventLoop
from .nic import Interface, InterfaceSpecError
from .policy import EventLoopPolicy, install
from .runner import new_event_loop, run
from .sockets import StackSocket, use_stack_sockets
from .transports.zerocopy import ViewProtocol

__all__ = [
    "EventLoopPolicy",
    "Interface",
    "InterfaceSpecError",
    "RustyEventLoop",
    "StackSocket",
    "StaticPayload",
    "ViewProtocol",
    "install",
    "new_event_loop",
    "run",
    "use_stack_sockets",
]
__version__ = "0.1.0"
