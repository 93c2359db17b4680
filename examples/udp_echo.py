"""UDP echo on the user-space stack: a datagram endpoint server and a client.

Shows: loop.create_datagram_endpoint() bound to the stack's address (server)
and sending to a peer reachable through the stack (client), with an ordinary
asyncio.DatagramProtocol; datagrams and the stack's UDP counters.

No root (a shared-memory link, one end each):

    python examples/udp_echo.py server --iface "shm:udp,ip=10.78.1.1/24"
    python examples/udp_echo.py client --iface "shm:udp,ip=10.78.1.2/24" 10.78.1.1 -n 100

Over a tap (root), reached from the host:

    sudo python examples/udp_echo.py server --iface "tap:rusty0,ip=10.0.0.2/24,host=10.0.0.1/24"
    echo hi | nc -u -w1 10.0.0.2 7777

The server stops on Ctrl-C or after --duration seconds; the client sends -n
datagrams one at a time and exits 0 when every one came back.
"""

import argparse
import asyncio
import sys

import aiorusty


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class Replies(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait(data)


async def server(port, duration):
    loop = asyncio.get_running_loop()
    host = str(loop.stack.interfaces[0].ip.ip)
    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=(host, port))
    print(f"udp echo on {host}:{port}", flush=True)
    try:
        await asyncio.sleep(duration or float("inf"))
    finally:
        transport.close()
        stats = loop.stack.stats()
        print(f"datagrams in/out: {stats['udp_rx']}/{stats['udp_tx']}", flush=True)


async def client(host, port, count, timeout):
    loop = asyncio.get_running_loop()
    transport, replies = await loop.create_datagram_endpoint(Replies, remote_addr=(host, port))
    echoed = 0
    try:
        for i in range(count):
            message = f"datagram {i}".encode()
            transport.sendto(message)
            try:
                echoed += await asyncio.wait_for(replies.queue.get(), timeout) == message
            except asyncio.TimeoutError:
                pass                     # UDP: a lost datagram is not retried
    finally:
        transport.close()
    stats = loop.stack.stats()
    print(f"{echoed}/{count} echoed; datagrams in/out: {stats['udp_rx']}/{stats['udp_tx']}")
    return echoed == count


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=("server", "client"))
    parser.add_argument("host", nargs="?", help="client: the server's address")
    parser.add_argument("--iface", required=True, help="interface spec, e.g. shm:udp,ip=10.78.1.1/24")
    parser.add_argument("--port", type=int, default=7777, help="UDP port (default: %(default)s)")
    parser.add_argument("-n", "--count", type=int, default=10, help="client: datagrams to send (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=2, help="client: seconds to wait for each reply "
                                                                 "(default: %(default)s)")
    parser.add_argument("--duration", type=float, default=0, help="server: stop after this many seconds "
                                                                  "(default: 0 = never)")
    args = parser.parse_intermixed_args()
    if args.role == "client" and not args.host:
        parser.error("client needs the server's address")
    try:
        if args.role == "server":
            aiorusty.run(server(args.port, args.duration), interfaces=[args.iface])
        else:
            sys.exit(0 if aiorusty.run(client(args.host, args.port, args.count, args.timeout),
                                       interfaces=[args.iface]) else 1)
    except KeyboardInterrupt:
        pass
