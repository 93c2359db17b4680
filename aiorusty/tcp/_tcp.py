"""Low-level TCP calls on a Stack (listen, connect, send, receive, close); mixed into Stack.

Placeholder until the TCP layer lands.
"""


class TcpApi:
    """TCP methods of aiorusty.tcp.Stack; they use self._ptr (the C stack)."""
