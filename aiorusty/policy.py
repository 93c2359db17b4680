"""The event-loop-policy compatibility layer: aiorusty.EventLoopPolicy and aiorusty.install().

Owns: a policy for code that picks its loop through asyncio's policy API
(asyncio.get_event_loop(), pytest-asyncio's event_loop_policy fixture, older
frameworks). It subclasses asyncio.DefaultEventLoopPolicy and changes only
new_event_loop(), so get_event_loop()/set_event_loop() and the child-watcher
machinery behave exactly as with the default policy. Prefer aiorusty.run() or
loop_factory=aiorusty.new_event_loop: asyncio is retiring policies.
"""

import asyncio

from .loop import RustyEventLoop

__all__ = ["EventLoopPolicy", "install"]


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making RustyEventLoops (interfaces from the arguments or AIORUSTY_IFACE)."""

    def __init__(self, interfaces=None, **loop_kw):
        super().__init__()
        self._rusty_interfaces = interfaces
        self._rusty_kw = loop_kw

    def new_event_loop(self):
        return RustyEventLoop(self._rusty_interfaces, **self._rusty_kw)


def install(interfaces=None, **loop_kw):
    """Make aiorusty the loop of asyncio.get_event_loop()/asyncio.run(): set EventLoopPolicy."""
    policy = EventLoopPolicy(interfaces, **loop_kw)
    asyncio.set_event_loop_policy(policy)
    return policy
