"""An ordinary pytest-asyncio test module: the conftest makes its loop aiorusty's."""

import asyncio

import pytest

from aiorusty.loop import RustyEventLoop
from aiorusty.transports.datagram import StackDatagramTransport


@pytest.mark.asyncio
async def test_runs_on_aiorusty_with_stack():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, RustyEventLoop)
    assert loop.stack is not None and loop.stack.route("10.79.0.1") == 1


@pytest.mark.asyncio
async def test_stack_and_kernel_endpoints():
    loop = asyncio.get_running_loop()
    tr, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("10.79.0.1", 0))
    assert isinstance(tr, StackDatagramTransport)
    tr.close()

    async def echo(reader, writer):
        writer.write(await reader.readline())
        writer.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    writer.write(b"kernel\n")
    assert await reader.readline() == b"kernel\n"
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
