"""Send path cost: bytes through the send buffer vs a StaticPayload, stack to stack.

    python bench/tcp_payload.py [--mb 200] [--runs 3] [--json bench/results/tcp_payload.json]

Two Stacks in this process joined by the in-process pair device (no kernel,
no checksum offload: byte segments are checksummed in software at transmit,
payload segments from the payload's prefix table), virtual time. The sender
queues 1 MiB at a time either with tcp_send (a copy into the send ring) or
with tcp_send_payload (a reference to the payload); the receiver drains with
tcp_recv. Reports Gbps per mode (median of the runs, alternating the modes);
never a test assertion. Both stacks share one core: the figure is the sum of
sender and receiver costs.
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiorusty._payload import StaticPayload  # noqa: E402
from aiorusty.nic import open_pair  # noqa: E402
from aiorusty.tcp import Stack  # noqa: E402
from _machine import describe, write_json  # noqa: E402


def one_run(n, use_payload):
    a, b = open_pair()
    tx, rx = Stack(seed=1), Stack(seed=2)
    try:
        now = 1_000_000
        tx.add_interface(a, now, ip="10.1.0.1/24")
        rx.add_interface(b, now, ip="10.1.0.2/24")
        lsock = rx.tcp_listen(None, 80)
        c = tx.tcp_connect(("10.1.0.2", 80), now_us=now)
        chunk = b"x" * (1 << 20)
        payload = StaticPayload(chunk)
        s = None
        sent = got = 0
        t0 = time.perf_counter()
        while got < n:
            now += 20
            tx.poll(now)
            rx.poll(now)
            if s is None:
                s = rx.tcp_accept(lsock)
                continue
            while sent < n:
                off = sent % len(chunk)
                if use_payload:
                    k = tx.tcp_send_payload(c, payload, off, len(chunk) - off, now_us=now)
                else:
                    k = tx.tcp_send(c, memoryview(chunk)[off:], now_us=now)
                if not k:
                    break
                sent += k
            while True:
                d = rx.tcp_recv(s, 1 << 20)
                if not d:
                    break
                got += len(d)
        return n * 8 / (time.perf_counter() - t0) / 1e9
    finally:
        tx.close()
        rx.close()
        a.close()
        b.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    n = args.mb << 20
    runs = {"bytes": [], "payload": []}
    for _ in range(args.runs):
        for mode in ("bytes", "payload"):
            runs[mode].append(one_run(n, mode == "payload"))
    results = {**describe(device="pair (in-process, no offload)", loop="none (Stack driven from Python)",
                          pinning="none, one process"), "bytes": n,
               "runs": {k: [round(v, 3) for v in vs] for k, vs in runs.items()},
               "bytes_gbps": round(statistics.median(runs["bytes"]), 3),
               "payload_gbps": round(statistics.median(runs["payload"]), 3)}
    print(json.dumps(results, indent=2))
    write_json(args.json, results)


if __name__ == "__main__":
    main()
