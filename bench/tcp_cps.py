"""Connections per second and memory per idle established connection, between
two aiorusty stacks over an in-process pair (no kernel in the path, one core).

    python bench/tcp_cps.py [--conns 20000] [--idle 5000] [--json results/tcp_cps.json]

The clock is virtual (the stacks are given time), so the figures measure the
stack's own work (Python driving loop included): handshake + one request byte +
close, per connection. Memory is the RSS growth of this process for `--idle`
established connections (both ends), halved; buffer pages never written are not
resident, so it is what an idle connection really costs. Never a test assertion.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _machine import describe, write_json  # noqa: E402
from _stacks import pair_stacks  # noqa: E402


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=20000)
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--json")
    args = ap.parse_args()
    sa, sb, close = pair_stacks(("10.3.0.1", "10.3.0.2"), pool=16384, tcp_msl_us=1000)   # otherwise defaults
    now = 0

    def tick():
        nonlocal now
        now += 50
        sa.poll(now)
        sb.poll(now)

    lsock = sa.tcp_listen(None, 80, 4096)
    t0 = time.perf_counter()
    for _ in range(args.conns):
        cs = sb.tcp_connect(("10.3.0.1", 80), now_us=now)
        ss = None
        while ss is None:
            tick()
            ss = sa.tcp_accept(lsock)
        sb.tcp_send(cs, b"x", now)
        sb.tcp_close(cs, now)
        tick()
        sa.tcp_recv(ss)
        sa.tcp_close(ss, now)
        tick()
        tick()
    cps = args.conns / (time.perf_counter() - t0)
    now += 10_000
    tick()
    base = rss_kib()
    held = []
    for _ in range(args.idle):
        cs = sb.tcp_connect(("10.3.0.1", 80), now_us=now)
        ss = None
        while ss is None:
            tick()
            ss = sa.tcp_accept(lsock)
        held.append((cs, ss))
    per_conn = (rss_kib() - base) * 1024 / args.idle / 2
    res = {**describe(device="pair (in-process)", loop="python driver, virtual clock", pinning="none, one process"),
           "connections_per_second": round(cps), "idle_conn_bytes_rss": round(per_conn),
           "established": sa.stats()["tcp_conns"], "stack_options": "defaults, tcp_msl_us=1000"}
    close()
    print(json.dumps(res, indent=2))
    write_json(args.json, res)


if __name__ == "__main__":
    main()
