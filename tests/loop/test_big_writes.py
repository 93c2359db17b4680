"""The megabyte write-then-read client: writer.write(8 MiB); await writer.drain(); then
reader.readexactly(8 MiB) against an asyncio streams echo server (read a chunk, write it
back, await drain).

The client reads nothing until its drain() returns, so the whole 8 MiB has to fit in
what the two connections can hold between them: the client's send buffer, the server's
receive and send buffers and the client's receive buffer. Kernel TCP auto-tunes those
to megabytes and this completes; a stack with fixed small buffers deadlocks (both
sides stuck in drain()). One body on stock asyncio (127.0.0.1), on aiorusty stack to
stack over the in-process pair, and over shm in one loop. The timeout only catches a
hang; no timing is asserted.
"""

import asyncio
import hashlib
import os

from _netns import unique

from ._base import AsyncioBase, RustyBase, echo

SIZE = 8 * 2**20
HANG = 60                       # seconds: a generous bound that only a deadlock reaches


class _TestBigWrites:
    def test_8mib_write_drain_then_read(self):
        async def main():
            server = await asyncio.start_server(echo, self.HOST, 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(self.HOST, port)
            payload = os.urandom(SIZE)
            writer.write(payload)
            await writer.drain()
            got = await reader.readexactly(SIZE)
            self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(payload).hexdigest())
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
        self.run_loop(main(), timeout=HANG)


class TestBigWrites_AIO(_TestBigWrites, AsyncioBase):
    pass


class TestBigWrites_RustyPair(_TestBigWrites, RustyBase):
    pass


class TestBigWrites_RustyShm(_TestBigWrites, RustyBase):
    """The same over an shm link whose two ends are both opened in this process."""

    def new_devices(self):
        from aiorusty.nic import open_device
        name = unique("rbig")
        return open_device(f"shm:{name}"), open_device(f"shm:{name}")
