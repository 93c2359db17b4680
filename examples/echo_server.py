"""TCP echo server on the user-space stack: asyncio streams run by aiorusty.run.

Shows: an ordinary asyncio.start_server() listening on the address the stack's
interface owns (its ip=), run by aiorusty.run() as asyncio.run() would run it,
and the stack's counters when it stops.

No root (a shared-memory link; examples/echo_client.py is the other end):

    python examples/echo_server.py --iface "shm:echo,ip=10.78.0.1/24"
    python examples/echo_client.py --iface "shm:echo,ip=10.78.0.2/24" 10.78.0.1 hello

Over a tap (root), reached from the host by any kernel client:

    sudo python examples/echo_server.py --iface "tap:rusty0,ip=10.0.0.2/24,host=10.0.0.1/24"
    nc 10.0.0.2 7777                     # the host is 10.0.0.1 on rusty0

Stops on Ctrl-C, or after --duration seconds.
"""

import argparse
import asyncio

import aiorusty


async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main(port, duration):
    loop = asyncio.get_running_loop()
    host = str(loop.stack.interfaces[0].ip.ip)          # the address this interface's ip= gave the stack
    server = await asyncio.start_server(echo, host, port)
    print(f"echo server listening on {host}:{port}", flush=True)
    async with server:
        if duration:
            await asyncio.sleep(duration)
        else:
            await server.serve_forever()
    stats = loop.stack.stats()
    print(f"connections accepted: {stats['tcp_passive_opens']}, "
          f"frames in/out: {stats['eth_rx_frames']}/{stats['eth_tx_frames']}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iface", default="shm:echo,ip=10.78.0.1/24", help="interface spec (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7777, help="TCP port (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: 0 = never)")
    args = parser.parse_args()
    try:
        aiorusty.run(main(args.port, args.duration), interfaces=[args.iface])
    except KeyboardInterrupt:
        pass
