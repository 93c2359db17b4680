"""aiorusty.tcp - the user-space TCP/IP stack (C core) and its thin Python wrapper."""

from ._stack import Stack

__all__ = ["Stack"]
