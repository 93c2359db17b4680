"""The loop's own cost per request: two stacks over an in-process pair, one loop, no kernel.

    python bench/loop_pair.py [--conns 32] [--seconds 3] [--rounds 3] [--json FILE]

A client protocol on stack B sends a 40-byte request on each of `--conns`
connections and sends the next one when the 60-byte response arrives; the
server protocol on stack A answers each request. Both ends run on the same
RustyEventLoop over `open_pair()` frames, so there is no system call, no
kernel and no NIC in the path: what is measured is the loop, the transports
and the C stack (client and server side together) per request/response, in
process CPU microseconds. It isolates the Python hot path from this machine's
kernel and noise, for before/after comparisons of the loop code
(PYTHONPATH=/other/checkout python bench/loop_pair.py). Never a test assertion.
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import resource
import statistics
import sys

sys.path.insert(0, os.environ.get("AIORUSTY_SRC") or os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiorusty  # noqa: E402
from aiorusty.loop import RustyEventLoop  # noqa: E402
from aiorusty.nic import open_pair  # noqa: E402
from aiorusty.tcp import Stack  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: 10.79.0.1\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nHello, World!\n"


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Server(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(RESPONSE)


class Client(asyncio.Protocol):
    count = 0
    running = True

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        Client.count += 1
        if Client.running:
            self.transport.write(REQUEST)


def run(conns, seconds, rounds):
    devs = open_pair()
    stacks = [Stack(seed=1), Stack(seed=2)]
    stacks[0].add_interface(devs[0], ip="10.79.0.1/24")
    stacks[1].add_interface(devs[1], ip="10.79.0.2/24")
    loop = RustyEventLoop(interfaces=(), stack=stacks)
    results = []

    async def main():
        server = await loop.create_server(Server, "10.79.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        trs = [(await loop.create_connection(Client, "10.79.0.1", port))[0] for _ in range(conns)]
        for tr in trs:
            tr.write(REQUEST)
        await asyncio.sleep(0.5)                       # warm up
        for _ in range(rounds):
            n0, c0, t0 = Client.count, cpu(), loop.time()
            await asyncio.sleep(seconds)
            n1, c1, t1 = Client.count, cpu(), loop.time()
            results.append({"requests_per_s": (n1 - n0) / (t1 - t0), "cpu_us_per_req": (c1 - c0) * 1e6 / (n1 - n0),
                            "cpu_share": (c1 - c0) / (t1 - t0)})
        Client.running = False
        for tr in trs:
            tr.close()
        server.close()
        await asyncio.sleep(0.1)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        for st in stacks:
            st.close()
        for d in devs:
            d.close()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    runs = run(args.conns, args.seconds, args.rounds)
    for r in runs:
        print(f"{r['requests_per_s']:9.0f} req/s  {r['cpu_us_per_req']:6.2f} cpu us/req (client+server)  "
              f"{r['cpu_share'] * 100:4.0f}% of a core")
    med = statistics.median(r["cpu_us_per_req"] for r in runs)
    print(f"median {med:.2f} cpu us per request/response, aiorusty from {os.path.dirname(aiorusty.__file__)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bench": "loop_pair", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"), "python": platform.python_version(), "kernel": platform.release(),
                "aiorusty": os.path.dirname(aiorusty.__file__), "conns": args.conns, "runs": runs,
                "median_cpu_us_per_req": med}, f, indent=1)


if __name__ == "__main__":
    main()
