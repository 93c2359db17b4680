"""An unmodified-style asyncio streams HTTP/1.1 server (keep-alive), run with aiorusty.run().

    AIORUSTY_IFACE=tap:NAME,ip=...,host=... python streams_app.py PORT
GET / -> HELLO, GET /big -> 5 MiB, GET /stream -> 25 MiB written chunk by chunk with drain(),
POST /upload -> sha256 of the body. SIGTERM/SIGINT: graceful exit 0.
"""

import asyncio
import hashlib
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BIG, HELLO  # noqa: E402

from aiorusty.runner import run  # noqa: E402


async def handle(reader, writer):
    try:
        while True:
            request = await reader.readline()
            if not request:
                break
            method, path, _ = request.decode().split(" ", 2)
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if method == "POST" and path == "/upload":
                digest = hashlib.sha256()
                left = length
                while left:
                    chunk = await reader.read(min(left, 65536))
                    if not chunk:
                        return
                    digest.update(chunk)
                    left -= len(chunk)
                body = digest.hexdigest().encode() + b"\n"
            elif path == "/stream":     # 25 MiB made on the fly: memory stays flat only with backpressure
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (400 * 65536))
                for i in range(400):
                    writer.write(bytes([i % 256]) * 65536)
                    await writer.drain()
                continue
            elif path == "/big":
                body = BIG
            else:
                body = HELLO
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n"
                         % len(body))
            writer.write(body)
            await writer.drain()
    except (ConnectionError, ValueError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(port):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    ssl_ctx = None
    if os.environ.get("APP_TLS_CERT"):
        import ssl
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(os.environ["APP_TLS_CERT"], os.environ["APP_TLS_KEY"])
    server = await asyncio.start_server(handle, "0.0.0.0", port, ssl=ssl_ctx)
    print("serving on", [s.getsockname() for s in server.sockets], "stack:", loop.stack is not None, flush=True)
    await stop
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    run(main(int(sys.argv[1])))
