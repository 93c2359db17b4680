"""aiorusty - an asyncio event loop on an in-process user-space TCP/IP stack."""

from .nic import Interface, InterfaceSpecError

__all__ = ["Interface", "InterfaceSpecError"]
__version__ = "0.1.0"
