"""Zero-copy HTTP server: requests read as views of the TCP receive ring, one prebuilt response.

Shows: aiorusty.ViewProtocol, whose view_received(view) gets a memoryview of
the stack's receive ring itself (no bytes object per read; the view is valid
only during the call, so copy what you keep), and aiorusty.StaticPayload, a
response built once whose checksums are precomputed and which is sent without
being copied into each connection's send buffer. The same protocol class also
runs on stock asyncio (views of the bytes it reads).

No root (a shared-memory link; examples/http_client.py is the other end):

    python examples/zerocopy_server.py --iface "shm:zc,ip=10.78.3.1/24"
    python examples/http_client.py --iface "shm:zc,ip=10.78.3.2/24" http://10.78.3.1:8080/

Over a tap (root): --iface "tap:rusty0,ip=10.0.0.2/24,host=10.0.0.1/24", then
`curl http://10.0.0.2:8080/` or `wrk http://10.0.0.2:8080/` from the host.
Every request gets the same page, whatever its path (a keep-alive HTTP/1.1
server for load tests, not a router). Stops on Ctrl-C or after --duration.
"""

import argparse
import asyncio
import re

import aiorusty

END_OF_HEAD = re.compile(rb"\r\n\r\n")      # re scans a memoryview in place; bytes.find would need a copy


def page(size):
    body = b"x" * (size - 1) + b"\n"
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return aiorusty.StaticPayload(head + body)


class StaticHTTP(aiorusty.ViewProtocol):
    """Answers each request (a head ending in a blank line; bodies are not expected) with one page."""

    def __init__(self, response, counter):
        self.response, self.counter = response, counter
        self.tail = b""          # the last 3 bytes seen: a blank line may straddle two reads

    def connection_made(self, transport):
        self.transport = transport

    def view_received(self, view):
        requests = len(END_OF_HEAD.findall(view))
        if self.tail:
            requests += END_OF_HEAD.search(self.tail + bytes(view[:3])) is not None
        self.tail = (self.tail + bytes(view[-3:]))[-3:]     # a copy: the view must not outlive this call
        for _ in range(requests):
            self.transport.write(self.response)
        self.counter[0] += requests


async def main(port, size, duration):
    loop = asyncio.get_running_loop()
    host = str(loop.stack.interfaces[0].ip.ip)
    response, served = page(size), [0]
    server = await loop.create_server(lambda: StaticHTTP(response, served), host, port)
    print(f"zero-copy HTTP on http://{host}:{port}/ ({size}-byte page)", flush=True)
    async with server:
        if duration:
            await asyncio.sleep(duration)
        else:
            await server.serve_forever()
    print(f"requests served: {served[0]}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iface", default="shm:zc,ip=10.78.3.1/24", help="interface spec (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default: %(default)s)")
    parser.add_argument("--size", type=int, default=1024, help="page size in bytes (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: 0 = never)")
    args = parser.parse_args()
    try:
        aiorusty.run(main(args.port, args.size, args.duration), interfaces=[args.iface])
    except KeyboardInterrupt:
        pass
