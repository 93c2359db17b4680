"""A streams HTTP server on create_server(host, port, reuse_port=True), as an app run in
several independent processes on one port writes it; GET /worker answers asgi_app's
"PID QUEUE PASSIVE_OPENS" line, every other path "hello".

    AIORUSTY_IFACE="tap:NAME,ip=...,queues=2,queue=auto" python reuseport_app.py HOST PORT
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aiorusty  # noqa: E402
from asgi_app import worker_line  # noqa: E402


async def handle(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    body = (worker_line() + "\n").encode() if head.startswith(b"GET /worker ") else b"hello\n"
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


async def main(host, port):
    server = await asyncio.start_server(handle, host, port, reuse_port=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    aiorusty.run(main(sys.argv[1], int(sys.argv[2])))
