"""One loop per core: an HTTP server in N worker processes, each with its own stack and queue.

Shows: aiorusty.run(main, workers=N), which starts N processes pinned to their
own cores, opens queue K of the multi-queue interface in worker K (queues=N,
queue=K: nothing shared between workers), and runs main(K, N) on each one's
loop; it returns the workers' results. The peer spreads flows over the queues
by a hash of their addresses and ports, so each connection lives on one worker.

No root (a shared-memory link with 2 queues; `aiorusty load` holds both
queues of the other end and steers each of its connections by that hash):

    python examples/workers.py --iface "shm:mq,ip=10.78.4.1/24" -w 2 --duration 10
    aiorusty load -w 1 -c 8 -d 3 --iface "shm:mq,ip=10.78.4.2/24,queues=2" http://10.78.4.1:8080/

Over a multi-queue tap (root: its flows are steered by an eBPF program), from the host:

    sudo python examples/workers.py --iface "tap:rusty0,ip=10.0.0.2/24,host=10.0.0.1/24" -w 2
    wrk -c 8 -d 3 http://10.0.0.2:8080/

Each worker prints its queue when it listens and, when it stops (after
--duration seconds), how many connections and requests it served.
"""

import argparse
import asyncio
import functools
import os

import aiorusty

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n"


async def worker(index, count, port, duration):
    loop = asyncio.get_running_loop()
    iface = loop.stack.interfaces[0]
    served = {"worker": index, "queue": iface.queue, "connections": 0, "requests": 0}

    async def http(reader, writer):
        # Keep-alive HTTP/1.1 without bodies: one response per request head, until the client closes.
        served["connections"] += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(RESPONSE)
                served["requests"] += 1
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(http, str(iface.ip.ip), port)
    print(f"worker {index}/{count} (pid {os.getpid()}, cores {sorted(os.sched_getaffinity(0))}) "
          f"on http://{iface.ip.ip}:{port}/, queue {iface.queue} of {iface.queues}", flush=True)
    async with server:
        await asyncio.sleep(duration)
    return served


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iface", default="shm:mq,ip=10.78.4.1/24",
                        help="interface spec, without queues= (each worker gets its own) (default: %(default)s)")
    parser.add_argument("-w", "--workers", type=int, default=os.cpu_count(), help="processes (default: one per core)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=30, help="seconds to serve (default: %(default)s)")
    args = parser.parse_args()
    main = functools.partial(worker, port=args.port, duration=args.duration)
    for result in aiorusty.run(main, workers=args.workers, interfaces=[args.iface]):
        print("worker {worker} (queue {queue}) served {connections} connections, {requests} requests".format(**result))
