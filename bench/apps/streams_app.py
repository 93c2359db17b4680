"""An asyncio streams HTTP/1.1 server (readuntil the blank line, keep-alive; GET only).

    python streams_app.py LOOP HOST PORT
"""

import asyncio

from _serve import RESPONSE, serve


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            writer.write(RESPONSE)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def start(loop, host, port):
    server = await asyncio.start_server(handle, host, port, backlog=1024)

    async def stop():
        server.close()
        await server.wait_closed()
    return stop


if __name__ == "__main__":
    serve(start)
