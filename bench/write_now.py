"""What sending at once costs: writes left to the tick, always sent, or sent when made outside the batch.

    python bench/write_now.py [--seconds 1.5] [--rounds 6] [--conns 32]
                              [--scenarios protocol,streams,protocol_pipe,streams_pipe,streams_bulk,...]
                              [--json bench/results/write_now.json]

Three rules for when a write's segments are built and handed to the device:
  tick     every write waits for the loop's next stack poll (what aiorusty did before)
  always   every write is followed by the stack's output step (rusty_stack_output)
  outside  a write made outside the selector's batch of stack events (a task, a
           timer, call_soon) is output at once; one made inside it (data_received)
           waits for the tick's output step that follows the batch (aiorusty's rule)
`outside` is the selector as built; `tick` and `always` are the same selector with
its `batching` flag pinned (a subclass swapped onto the instance: a property for
`always`, which costs a few tens of ns per write more than an attribute).

Scenarios (client and server: two stacks over the in-process pair, one loop, so no
kernel and no system call is in the path and the CPU figures are the loop's and
the stack's own, client and server together):
  protocol        an asyncio.Protocol server writes each reply in data_received
  streams         an asyncio streams server (start_server) writes from its task
  protocol_pipe   as protocol, the client sending 16 requests at a time (16 writes per read)
  streams_pipe    as streams, 16 pipelined requests (16 writes per task step)
  streams_bulk    as streams, each reply written as 64 writes of 1 KiB
  streams_bulk_lines  the same reply in one writelines() call
Figures: requests/s and CPU microseconds per request (process CPU, getrusage),
median over rounds, and the median of each round's CPU-per-request ratio to
`tick`; the modes alternate within each round, each taking the first seat in
turn, so drift hits all three. On a
shared machine req/s follows whatever else runs (the process's share of a core
is printed per run): compare CPU per request.
Never a test assertion.
"""

import argparse
import asyncio
import os
import resource
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from _machine import describe, write_json  # noqa: E402  (bench/, the script's directory)

from aiorusty._selector import RustySelector  # noqa: E402
from aiorusty.loop import RustyEventLoop  # noqa: E402
from aiorusty.nic import open_pair  # noqa: E402
from aiorusty.tcp import Stack  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: 10.78.0.1\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nHello, World!\n"
CHUNK, CHUNKS = b"x" * 1024, 64
BULK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(CHUNK) * CHUNKS)
BULK_LINES = [BULK_HEAD] + [CHUNK] * CHUNKS
SCENARIOS = {                   # name: (server kind, pipelined requests, bulk reply written by)
    "protocol": ("protocol", 1, False),
    "streams": ("streams", 1, False),
    "protocol_pipe": ("protocol", 16, False),
    "streams_pipe": ("streams", 16, False),
    "streams_bulk": ("streams", 1, "write"),
    "streams_bulk_lines": ("streams", 1, "writelines"),
}
MODES = ("tick", "always", "outside")


class _Tick(RustySelector):
    """Every write waits for the tick: `batching` stays True (set again after each dispatch)."""

    def _dispatch(self):
        RustySelector._dispatch(self)
        self.batching = True


class _Always(RustySelector):
    """Every write is output at once: `batching` reads False even during a dispatch."""

    batching = property(lambda self: False, lambda self, value: None)


def set_mode(loop, mode):
    sel = loop._selector
    if mode == "tick":
        sel.__class__ = _Tick
        sel.batching = True
    elif mode == "always":
        sel.__class__ = _Always
    sel.attach(loop)                    # the dispatch Handle binds the class's _dispatch


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class ProtocolServer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.tail = b""

    def data_received(self, data):
        data = self.tail + data
        n = data.count(b"\r\n\r\n")
        self.tail = data[data.rfind(b"\r\n\r\n") + 4:] if n else data
        for _ in range(n):
            self.transport.write(RESPONSE)


def streams_handler(bulk):
    async def handle(reader, writer):
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                if bulk == "write":
                    writer.write(BULK_HEAD)
                    for _ in range(CHUNKS):
                        writer.write(CHUNK)
                elif bulk:
                    writer.writelines(BULK_LINES)
                else:
                    writer.write(RESPONSE)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
    return handle


class Client(asyncio.Protocol):
    """Sends `depth` requests, and the next `depth` once their replies are all in."""

    done = 0
    running = True

    def __init__(self, depth, reply_len):
        self.depth, self.want, self.got = depth, depth * reply_len, 0
        self.batch = REQUEST * depth

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.batch)

    def data_received(self, data):
        self.got += len(data)
        while self.got >= self.want:
            self.got -= self.want
            Client.done += self.depth
            if Client.running:
                self.transport.write(self.batch)


def run_one(scenario, mode, conns, seconds):
    kind, depth, bulk = SCENARIOS[scenario]
    reply_len = len(BULK_HEAD) + len(CHUNK) * CHUNKS if bulk else len(RESPONSE)
    devs = open_pair()
    stacks = [Stack(seed=1), Stack(seed=2)]
    stacks[0].add_interface(devs[0], ip="10.78.0.1/24")
    stacks[1].add_interface(devs[1], ip="10.78.0.2/24")
    loop = RustyEventLoop(interfaces=(), stack=stacks)
    set_mode(loop, mode)
    Client.done, Client.running = 0, True
    out = {}

    async def main():
        if kind == "protocol":
            server = await loop.create_server(ProtocolServer, "10.78.0.1", 0)
        else:
            server = await asyncio.start_server(streams_handler(bulk), "10.78.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        trs = [(await loop.create_connection(lambda: Client(depth, reply_len), "10.78.0.1", port))[0]
               for _ in range(conns)]
        await asyncio.sleep(0.3)        # warm up
        n0, c0, t0 = Client.done, cpu(), loop.time()
        await asyncio.sleep(seconds)
        n1, c1, t1 = Client.done, cpu(), loop.time()
        out.update(requests_per_s=(n1 - n0) / (t1 - t0), cpu_us_per_req=(c1 - c0) * 1e6 / max(1, n1 - n0),
                   cpu_share=(c1 - c0) / (t1 - t0), ticks=loop._selector.ticks, sleeps=loop._selector.sleeps)
        Client.running = False
        for tr in trs:
            tr.close()
        server.close()
        await asyncio.sleep(0.1)
    try:
        loop.run_until_complete(asyncio.wait_for(main(), seconds + 30))
    finally:
        loop.close()
        for st in stacks:
            st.close()
        for d in devs:
            d.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            raise SystemExit(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")
    runs = {s: {m: [] for m in MODES} for s in scenarios}
    for s in scenarios:
        for r in range(args.rounds):
            for m in MODES[r % 3:] + MODES[:r % 3]:     # each mode first in turn: no seat is favoured
                res = run_one(s, m, args.conns, args.seconds)
                runs[s][m].append(res)
                print(f"{s:18s} {m:8s} round {r + 1}: {res['requests_per_s']:9.0f} req/s "
                      f"{res['cpu_us_per_req']:6.2f} cpu us/req {res['cpu_share'] * 100:4.0f}% of a core "
                      f"{res['sleeps']} sleeps", flush=True)
    summary = {}
    print(f"\n{'scenario':18s} {'mode':8s} {'req/s':>9s} {'cpu us/req':>10s} {'cpu vs tick':>11s}"
          "  (medians; client+server in one process)")
    for s in scenarios:
        summary[s] = {}
        for m in MODES:
            rps = statistics.median(x["requests_per_s"] for x in runs[s][m])
            us = statistics.median(x["cpu_us_per_req"] for x in runs[s][m])
            # Per-round ratios (same round, neighbouring runs), then their median: the
            # machine's drift between rounds cancels.
            ratio = statistics.median(x["cpu_us_per_req"] / t["cpu_us_per_req"]
                                      for x, t in zip(runs[s][m], runs[s]["tick"]))
            summary[s][m] = {"requests_per_s": rps, "cpu_us_per_req": us, "cpu_per_req_vs_tick": ratio}
            print(f"{s:18s} {m:8s} {rps:9.0f} {us:10.2f} {ratio:11.2f}")
    write_json(args.json, {**describe(bench="write_now", device="in-process pair (open_pair), one loop",
                                      conns=args.conns, seconds=args.seconds, rounds=args.rounds,
                                      pinning="none"),
                           "summary": summary, "runs": runs})


if __name__ == "__main__":
    main()
