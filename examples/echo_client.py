"""TCP echo client on the user-space stack: open connections, send a message, check the echo.

Shows: asyncio.open_connection() to a peer reachable through the stack's
interface (so the connection is opened on the stack, from its ip=), many
connections at once, and the stack's counters afterwards.

    python examples/echo_client.py --iface "shm:echo,ip=10.78.0.2/24" 10.78.0.1 hello
    python examples/echo_client.py --iface "shm:echo,ip=10.78.0.2/24" -c 50 10.78.0.1 hello

(start examples/echo_server.py on the link's other side first). Exits 0 when
every connection got its message back, 1 otherwise.
"""

import argparse
import asyncio
import sys

import aiorusty


async def one(host, port, message, timeout):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(message)
        return await asyncio.wait_for(reader.readexactly(len(message)), timeout) == message
    finally:
        writer.close()
        await writer.wait_closed()


async def main(host, port, message, connections, timeout):
    results = await asyncio.gather(*(one(host, port, message, timeout) for _ in range(connections)),
                                   return_exceptions=True)
    ok = sum(r is True for r in results)
    errors = {repr(r) for r in results if isinstance(r, BaseException)}
    stats = asyncio.get_running_loop().stack.stats()
    print(f"{ok}/{connections} echoed" + (f"; errors: {', '.join(sorted(errors))}" if errors else ""))
    print(f"connections opened on the stack: {stats['tcp_active_opens']}, retransmits: {stats['tcp_retransmits']}")
    return ok == connections


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host", help="the echo server's address")
    parser.add_argument("message", help="text to send on each connection")
    parser.add_argument("--iface", default="shm:echo,ip=10.78.0.2/24", help="interface spec (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7777, help="TCP port (default: %(default)s)")
    parser.add_argument("-c", "--connections", type=int, default=1, help="connections at once (default: 1)")
    parser.add_argument("--timeout", type=float, default=10, help="seconds per step (default: %(default)s)")
    args = parser.parse_args()
    ok = aiorusty.run(main(args.host, args.port, args.message.encode(), args.connections, args.timeout),
                      interfaces=[args.iface])
    sys.exit(0 if ok else 1)
