"""Busy-poll below saturation: the server's CPU per request and the latency, by offered rate.

    python bench/busy_poll.py [--rates 1000,10000,50000] [--servers aiorusty:100,aiorusty:0,uvloop]
                              [--duration 4] [--json bench/results/busy_poll.json]

A saturated server spins through no idle time, so the busy-poll policy shows
only below saturation, where a spinning loop burns the gaps between requests.
For each offered rate and each server - aiorusty with a busy-poll limit (the
adaptive window's maximum; 0 sleeps at once) or uvloop on 127.0.0.1 - this
runs `aiorusty serve` pinned to core 0 and `aiorusty load --rate R -c 4`
pinned to core 1 (open loop: latency counted from the intended send time, so a
late sender is charged), GET /64, and reports the server process's CPU per
response over the load (its on-CPU nanoseconds from /proc/PID/schedstat: at
1,000 req/s a run's CPU is a few jiffies, too coarse for os.times), p50/p99 latency, and the aiorusty server's epoll sleeps and window
changes. Runs alternate between servers at each rate. Figures only, never a
test assertion.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from _machine import describe, write_json  # noqa: E402
from aiorusty.testbed.bench import _stop, _wait_line  # noqa: E402

SERVER_IP, CLIENT_IP, PORT = "10.79.0.1", "10.79.0.2", 18090


def oncpu_ns(pid):
    """Nanoseconds the process's (one) thread has run, from the scheduler's accounting."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def run(server, rate, args, tmp, n):
    kind, _, limit = server.partition(":")
    name = f"bp{os.getpid()}x{n}"
    stats, ljson = os.path.join(tmp, f"{n}-server.json"), os.path.join(tmp, f"{n}-load.json")
    py = [sys.executable, "-m", "aiorusty"]
    scmd = py + ["serve", "-q", "--port", str(PORT), "--workers", "1", "--cpus", "0", "--stats-json", stats]
    lcmd = py + ["load", "-q", "-d", str(args.duration), "-c", "4", "--rate", str(rate),
                 "--workers", "1", "--cpus", "1", "--json", ljson]
    if kind == "uvloop":
        scmd += ["--uvloop", "--host", "127.0.0.1"]
        lcmd += ["--uvloop", f"http://127.0.0.1:{PORT}/64"]
    else:
        scmd += ["--iface", f"shm:{name},ip={SERVER_IP}/24", "--busy-poll-us", limit or "100"]
        lcmd += ["--iface", f"shm:{name},ip={CLIENT_IP}/24", f"http://{SERVER_IP}:{PORT}/64"]
    srv = subprocess.Popen(scmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_line(srv, 20, f"{server} server")
        cpu0 = oncpu_ns(srv.pid)
        subprocess.run(lcmd, check=True, stdout=subprocess.DEVNULL, timeout=args.duration + 60)
        cpu1 = oncpu_ns(srv.pid)
    finally:
        _stop(srv)
    with open(stats) as f:
        s = json.load(f)
    with open(ljson) as f:
        load = json.load(f)
    ticks = s["workers"][0].get("loop_ticks", {})
    return {"server": server, "rate": rate, "rps": load["requests_per_s"],
            "server_cpu_us_per_req": (cpu1 - cpu0) / 1e3 / load["requests"] if load["requests"] else None,
            "p50_us": load["latency_us"]["p50"], "p99_us": load["latency_us"]["p99"],
            "errors": load["errors_total"], "sleeps": ticks.get("sleeps"),
            "window_grew": ticks.get("window_grew"), "window_shrank": ticks.get("window_shrank")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="1000,10000,50000", help="offered req/s (default: %(default)s)")
    ap.add_argument("--servers", default="aiorusty:100,aiorusty:0,uvloop",
                    help="aiorusty:LIMIT_US or uvloop (default: %(default)s)")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per run (default: %(default)s)")
    ap.add_argument("--json", default=None, help="write the results here (default: none)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in [int(r) for r in args.rates.split(",")]:
            for server in args.servers.split(","):
                row = run(server, rate, args, tmp, len(rows))
                rows.append(row)
                print(f"{rate:>7} req/s  {server:13} server {row['server_cpu_us_per_req']:6.1f} us/req  "
                      f"p50 {row['p50_us']:7.0f} us  p99 {row['p99_us']:7.0f} us  "
                      f"sleeps {row['sleeps'] if row['sleeps'] is not None else '-':>7}  "
                      f"({row['rps']:,.0f} req/s, {row['errors']} errors)", flush=True)
    if args.json:
        res = describe(device="shm (aiorusty), 127.0.0.1 (uvloop)", loop="aiorusty serve vs uvloop serve",
                       pinning="server core 0, generator core 1", command=" ".join(sys.argv), runs=rows)
        write_json(args.json, res, indent=1)


if __name__ == "__main__":
    main()
