"""Ordinary pytest-asyncio tests; conftest.py puts them on aiorusty's loop."""

import asyncio

import pytest

import aiorusty


@pytest.mark.asyncio
async def test_runs_on_aiorusty():
    assert isinstance(asyncio.get_running_loop(), aiorusty.RustyEventLoop)


@pytest.mark.asyncio
async def test_echo_on_the_stack():
    async def echo(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    stack = asyncio.get_running_loop().stack
    host = str(stack.interfaces[0].ip.ip)
    server = await asyncio.start_server(echo, host, 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"over the user-space stack\n")
        assert await reader.readline() == b"over the user-space stack\n"
        writer.close()
        await writer.wait_closed()
    assert stack.stats()["tcp_passive_opens"] == 1
