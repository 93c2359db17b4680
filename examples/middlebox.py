"""Middlebox test: generator -> impaired middlebox -> server, each in its own network namespace.

Shows: a whole test-bed run driven from a script with the `aiorusty` command:
`aiorusty testbed up` builds three namespaces joined by veth pairs, the middle
one a Linux router dropping a share of the packets it forwards and limiting
each direction's rate; `aiorusty serve` runs in the server namespace and
`aiorusty load` in the generator's, each on its own user-space stack
(AF_PACKET); the script prints the generator's rates and latency, the
generator's retransmits and what the middlebox dropped, then removes
everything (`aiorusty testbed down`), also on Ctrl-C or error.

Root (namespaces, veth, nftables, tc); about duration + 5 seconds:

    sudo python examples/middlebox.py --loss 1 --rate 200mbit --duration 5
    sudo python examples/middlebox.py --loss 0 --page /1m      # no impairment, 1 MiB responses

Replace the Linux middlebox with the one under test by putting it in the middle
namespace (the commands `aiorusty testbed up` prints show the layout).
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

AIORUSTY = [sys.executable, "-m", "aiorusty"]


def sh(argv, timeout=60):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"middlebox: `{shlex.join(argv)}` failed: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def role_commands(plan):
    """The serve and load commands `aiorusty testbed up` prints, as argv lists running this Python."""
    commands = {}
    for line in plan.splitlines():
        argv = shlex.split(line)
        if argv[:3] == ["ip", "netns", "exec"] and len(argv) > 4:
            role = "serve" if "serve" in argv else "load"
            at = argv.index(role)
            commands.setdefault(role, argv[:4] + AIORUSTY + argv[at:])     # the first pair: one direction
    return commands["serve"], commands["load"]


def middlebox_drops(ns):
    rules = sh(["ip", "netns", "exec", ns, "nft", "list", "ruleset"])
    qdiscs = sh(["ip", "netns", "exec", ns, "tc", "-s", "qdisc", "show"])
    return (sum(int(n) for n in re.findall(r"counter packets (\d+)", rules)),
            sum(int(n) for n in re.findall(r"dropped (\d+)", qdiscs)))


def run(args, tmp):
    plan = sh(AIORUSTY + ["testbed", "up", "--prefix", args.prefix, "--loss", str(args.loss)]
              + (["--rate", args.rate] if args.rate else []))
    print(plan.splitlines()[0], flush=True)
    serve, load = role_commands(plan)
    stats, report = os.path.join(tmp, "serve.json"), os.path.join(tmp, "load.json")
    server = subprocess.Popen(serve + ["--duration", str(args.duration + 30), "--stats-json", stats],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = server.stdout.readline()                 # the server prints its banner once it listens
        if not banner:
            raise SystemExit(f"middlebox: the server did not start: {server.stderr.read().strip()}")
        url = re.sub(r"/[^/]*$", args.page, load[-1])
        sh(load[:-1] + ["-q", "-d", str(args.duration), "-c", str(args.connections), "--json", report, url],
           timeout=args.duration + 60)
    finally:
        server.terminate()
        server.communicate(timeout=20)
    with open(report) as f:
        r = json.load(f)
    lat = r["latency_us"]
    print(f"generator: {r['requests']:,} responses in {r['duration_s']:.1f} s = {r['requests_per_s']:,.0f} req/s, "
          f"goodput {r['goodput_gbps'] * 1000:.1f} Mbit/s, wire {r['wire_gbps'] * 1000:.1f} Mbit/s")
    print(f"latency: p50 {lat['p50'] / 1000:.2f} ms, p99 {lat['p99'] / 1000:.2f} ms; "
          f"errors: {r['errors'] or 'none'}; "
          f"TCP retransmits: {sum(w.get('tcp_retransmits', 0) for w in r['workers'])}")
    lost, shaped = middlebox_drops(f"{args.prefix}-mb")
    print(f"middlebox: {lost:,} packets dropped by the loss rule, {shaped:,} by the rate limit")
    return r["requests"] > 0 and not r["errors"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loss", type=float, default=1.0, help="percent of forwarded packets dropped (default: 1)")
    parser.add_argument("--rate", default="200mbit", help="rate limit per direction, '' for none (default: 200mbit)")
    parser.add_argument("--duration", type=float, default=5, help="seconds of load (default: %(default)s)")
    parser.add_argument("-c", "--connections", type=int, default=8, help="connections (default: %(default)s)")
    parser.add_argument("--page", default="/16k", help="page to GET: /64 /1k /16k /1m (default: %(default)s)")
    parser.add_argument("--prefix", default="ex", help="namespace name prefix (default: %(default)s)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("middlebox: needs root (network namespaces, veth, nftables, tc); run it with sudo")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ok = run(args, tmp)
    finally:
        subprocess.run(AIORUSTY + ["testbed", "down", "--prefix", args.prefix], capture_output=True, timeout=60)
    sys.exit(0 if ok else 1)
