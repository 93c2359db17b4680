"""Many concurrent keep-alive HTTP/1.1 clients on kernel sockets (run inside the test's namespace).

    python client.py HOST PORT CONNECTIONS REQUESTS_PER_CONNECTION [pipeline]
Prints "ok N" when every response had the exact body; exits 1 otherwise.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import HELLO  # noqa: E402


async def one(host, port, n, pipeline):
    reader, writer = await asyncio.open_connection(host, port)
    ok = 0
    if pipeline:                        # every request in one write, then read the responses
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * n)
    for _ in range(n):
        if not pipeline:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        length = None
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        ok += body == HELLO
    writer.close()
    return ok


async def main(host, port, conns, n, pipeline=False):
    results = await asyncio.wait_for(asyncio.gather(*[one(host, port, n, pipeline) for _ in range(conns)]), 60)
    total = sum(results)
    print("ok", total, flush=True)
    return total == conns * n


if __name__ == "__main__":
    host, port, conns, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    sys.exit(0 if asyncio.run(main(host, port, conns, n, sys.argv[5:] == ["pipeline"])) else 1)
