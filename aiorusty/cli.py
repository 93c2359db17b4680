"""The `aiorusty` command (also `python -m aiorusty`): demo, serve, load, bench, testbed.

Owns: the argument parsers (every flag has a default, shown in --help) and
dispatch to aiorusty._demo and aiorusty.testbed. Not: what the commands do.
"""

import argparse
import logging
import sys


def _demo(args):
    from ._demo import run_demo

    ok = run_demo(count=args.count, size=args.size, timeout_s=args.timeout)
    return 0 if ok else 1


def _loop_kind(args):
    if args.kernel and args.uvloop:
        raise SystemExit("aiorusty: --kernel and --uvloop are exclusive")
    args.loop = "asyncio" if args.kernel else "uvloop" if args.uvloop else "aiorusty"


def _workers(args):
    from .testbed.workers import default_workers
    if args.workers is None or args.workers == 0:
        args.workers = default_workers()
    if args.workers < 1:
        raise SystemExit("aiorusty: --workers must be at least 1")


def _serve(args):
    from .testbed import serve
    from .testbed.workers import WorkerFailed
    _loop_kind(args)
    _workers(args)
    try:
        return serve.run(args)
    except WorkerFailed as e:
        print(f"aiorusty serve: {e}", file=sys.stderr)
        return 2


def _load(args):
    from .testbed import load, report
    from .testbed.workers import WorkerFailed, run_workers
    _loop_kind(args)
    _workers(args)
    if args.duration <= 0:
        raise SystemExit("aiorusty load: -d must be positive (every run is bounded in time)")
    if args.connect_rate < 0:
        raise SystemExit(f"aiorusty load: --connect-rate {args.connect_rate:g}: expected connections per second "
                         "(0 = unlimited)")
    if args.hold < 0:
        raise SystemExit(f"aiorusty load: --hold {args.hold:g}: expected seconds to keep the connections idle")
    if args.hold and (args.new_connection or args.rate):
        raise SystemExit("aiorusty load: --hold sends one request per connection at the end; it does not "
                         "combine with --new-connection or --rate")
    args.source_ports = _port_range(args.source_ports)
    try:
        load.parse_urls(args.url, args.url_list, args.header)  # fail early on a bad URL or header
    except ValueError as e:
        raise SystemExit(f"aiorusty load: {e}") from None
    args.progress_enabled = args.progress or (sys.stderr.isatty() and not args.quiet)
    # Default cores from the last one down, so `serve -w 1` (core 0 first) and `load -w 1` do not
    # share a core.
    from .testbed.workers import available_cores
    cores = [int(c) for c in args.cpus.split(",")] if args.cpus else available_cores()[::-1]
    try:
        parts = run_workers(load.load_worker, args.workers, (args,), cores=cores,
                            timeout=args.duration + args.hold + 2 * args.timeout + 60)
    except WorkerFailed as e:
        print(f"\naiorusty load: {e}", file=sys.stderr)
        return 2
    if args.progress_enabled:
        sys.stderr.write("\n")
    result = report.merge_load(parts, args)
    if not args.quiet:
        report.text_report(result)
    if args.json:
        report.write_json(args.json, result)
    return 0 if result["requests"] else 1


def _port_range(text):
    """(lo, hi) of --source-ports LO-HI, or None when not given."""
    if not text:
        return None
    lo, sep, hi = text.partition("-")
    try:
        lo, hi = int(lo), int(hi)
    except ValueError:
        lo = hi = 0
    if not sep or not 1 <= lo <= hi <= 65535:
        raise SystemExit(f"aiorusty load: --source-ports {text}: expected LO-HI with 1 <= LO <= HI <= 65535, "
                         "e.g. 20000-29999")
    return lo, hi


def _bench(args):
    from .testbed import bench
    return bench.run(args)


def _testbed(args):
    from .testbed import topology
    return topology.main(args)


def _add_loop_flags(p, default_iface, what):
    p.add_argument("--iface", default=default_iface,
                   help=f"interface spec of the user-space stack {what} (default: %(default)s)")
    p.add_argument("--kernel", action="store_true",
                   help="use the kernel's TCP with stock asyncio instead of the user-space stack (default: off)")
    p.add_argument("--uvloop", action="store_true", help="use the kernel's TCP with uvloop (default: off)")
    p.add_argument("--workers", "-w", type=int, default=None,
                   help="processes, each pinned to its own core with its own stack on its own NIC queue "
                        "(default: one per available core)")
    p.add_argument("--cpus", default="", help="cores to pin the workers to, comma-separated "
                                              "(default: the available cores; serve from the first, "
                                              "load from the last)")
    p.add_argument("--busy-poll-us", type=int, default=None,
                   help="aiorusty loop: the most microseconds of busy-polling after activity; the window "
                        "adapts below it (default: AIORUSTY_BUSY_POLL_US or 100)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="aiorusty",
        description="aiorusty: an asyncio event loop on an in-process user-space TCP/IP stack.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (default: off)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="two user-space stacks talking over the shm link (no root, no NIC)",
        description="Start a second process with its own stack on an shm link, ping it and stream "
        "UDP datagrams through it, then print round trips and counters. Needs no root.",
    )
    demo.add_argument("--count", type=int, default=2000, help="UDP datagrams to echo (default: 2000)")
    demo.add_argument("--size", type=int, default=64, help="UDP payload bytes (default: 64)")
    demo.add_argument("--timeout", type=float, default=20.0, help="seconds before giving up (default: 20)")
    demo.set_defaults(func=_demo)

    from .testbed.load import DEFAULT_IFACE as LOAD_IFACE, DEFAULT_URL
    from .testbed.serve import DEFAULT_IFACE as SERVE_IFACE, DEFAULT_PORT

    serve = sub.add_parser(
        "serve", help="static HTTP/1.1 server on the user-space stack (or the kernel, or uvloop)",
        description="Serve a folder, or generated pages of given sizes (/64, /1k, ...), over HTTP/1.1 "
        "with keep-alive and pipelining, on the user-space stack (default: the shm link that "
        "`aiorusty load` uses by default, no root needed), on the kernel (--kernel) or uvloop (--uvloop). "
        "Stops on SIGINT/SIGTERM or after --duration.")
    _add_loop_flags(serve, SERVE_IFACE, "(the server listens on its ip=)")
    serve.add_argument("--host", default="127.0.0.1", help="--kernel/--uvloop: address to listen on "
                                                           "(default: %(default)s)")
    serve.add_argument("--port", "-p", type=int, default=DEFAULT_PORT, help="TCP port (default: %(default)s)")
    serve.add_argument("--root", default="", help="serve this folder (loaded into memory at start) "
                                                  "instead of generated pages (default: none)")
    serve.add_argument("--pages", default="64,1k,16k,1m",
                       help="generated page sizes, served as /SIZE (default: %(default)s)")
    serve.add_argument("--parser", choices=("auto", "httptools", "simple"), default="auto",
                       help="request parser: httptools, or the built-in one (default: %(default)s = "
                            "httptools when installed)")
    serve.add_argument("--duration", type=float, default=0.0,
                       help="stop after this many seconds (default: 0 = until SIGINT/SIGTERM)")
    serve.add_argument("--stats-json", default="", help="write the server's counters (requests, "
                                                        "CPU time, per worker) to this file at exit (default: none)")
    serve.add_argument("--quiet", "-q", action="store_true", help="print only worker 0's banner (default: off)")
    serve.set_defaults(func=_serve)

    load = sub.add_parser(
        "load", help="wrk-like HTTP load generator on the user-space stack (or the kernel)",
        description="Load an HTTP server from connections opened on the user-space stack (or the kernel "
        "with --kernel/--uvloop) and report req/s, goodput and wire Gbps, latency percentiles "
        "(p50/p90/p99/p99.9/max) and errors by kind. Every run is bounded by time (-d) and, with -n, count.")
    load.add_argument("url", nargs="?", default=DEFAULT_URL, help="URL to request (default: %(default)s)")
    _add_loop_flags(load, LOAD_IFACE, "(connections open from its ip=)")
    load.add_argument("--url-list", default="", help="file of 'WEIGHT URL' lines (same host and port) "
                                                     "to pick requests from, by weight (default: none)")
    load.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                      help="a header sent with every request, as wrk's -H; repeatable; a Host header "
                           "replaces the one from the URL (default: none)")
    load.add_argument("-c", "--connections", type=int, default=32, help="connections kept open, across all "
                                                                         "workers (default: %(default)s)")
    load.add_argument("-d", "--duration", type=float, default=10.0, help="seconds to run (default: %(default)s)")
    load.add_argument("-n", "--requests", type=int, default=0,
                      help="stop after this many requests (default: 0 = no count limit; -d still applies)")
    load.add_argument("--pipeline", type=int, default=1, help="requests outstanding per connection "
                                                              "(default: %(default)s)")
    load.add_argument("--rate", type=float, default=0.0,
                      help="open loop: requests per second in all, on a fixed schedule; latency counts from "
                           "the intended send time (default: 0 = closed loop, as fast as responses come)")
    load.add_argument("--new-connection", action="store_true",
                      help="one request per connection, closed by the client (default: off = keep-alive)")
    load.add_argument("--timeout", type=float, default=5.0, help="connect / response timeout in seconds "
                                                                 "(default: %(default)s)")
    load.add_argument("--connect-rate", type=float, default=0.0,
                      help="open at most this many connections per second, across all workers, first opens and "
                           "reconnects alike (token bucket); with --hold, the final requests go at this rate "
                           "too (default: 0 = unlimited)")
    load.add_argument("--hold", type=float, default=0.0, metavar="SECONDS",
                      help="hold mode: open -c connections (-d bounds the opening), keep them idle this many "
                           "seconds, then send one request on each and count the answers (default: 0 = off)")
    load.add_argument("--source-ports", default="", metavar="LO-HI",
                      help="source ports of the connections on the stack: its ephemeral range, or the range "
                           "steered workers pick from (default: 49152-65535; --new-connection 1024-65535; "
                           "steered workers 20000-47999). Each source address has its own; when one address's "
                           "ports to the server run out, connections move to the next address of the --iface "
                           "ip= range or list")
    load.add_argument("--msl-ms", type=int, default=250,
                      help="--new-connection on the stack: TCP maximum segment lifetime of the generator's "
                           "stack, TIME-WAIT is twice this (default: %(default)s)")
    load.add_argument("--no-steer", dest="steer", action="store_false",
                      help="workers on the stack: do not pick source ports that hash to the worker's own "
                           "queue (default: pick them)")
    load.add_argument("--seed", type=int, default=1, help="random seed for the URL choice (default: %(default)s)")
    load.add_argument("--progress", action="store_true",
                      help="print a progress line each second even when stderr is not a terminal "
                           "(default: only on a terminal)")
    load.add_argument("--json", default="", help="write the full report to this JSON file (default: none)")
    load.add_argument("--quiet", "-q", action="store_true", help="no report on stdout (default: off)")
    load.set_defaults(func=_load)

    bench = sub.add_parser(
        "bench", help="the same server on asyncio, uvloop and aiorusty side by side; table, JSON, charts",
        description="Run the test-bed's HTTP server on asyncio and uvloop (kernel, 127.0.0.1) and on "
        "aiorusty (user-space stack over the shm link, no root), each loaded by the same generator "
        "code, server and generator pinned to their own cores, runs alternated and repeated; print a "
        "table of req/s and server CPU per request with ratios against uvloop, and write JSON, a "
        "Markdown report and PNG charts under --out.")
    bench.add_argument("--quick", action="store_true", help="short runs, one round: under a minute (default: off)")
    bench.add_argument("--duration", type=float, default=5.0, help="seconds per run (default: %(default)s; "
                                                                   "--quick: 2)")
    bench.add_argument("--rounds", type=int, default=3, help="rounds of alternated runs; medians are "
                                                             "reported (default: %(default)s; --quick: 1)")
    bench.add_argument("--loops", default="asyncio,uvloop,aiorusty",
                       help="loops to compare (default: %(default)s)")
    bench.add_argument("--scenarios", default="small,newconn,bulk",
                       help="request mixes: small (keep-alive GET /64), newconn (one request per connection), "
                            "bulk (GET /1m), pipeline (16 pipelined GET /64) (default: %(default)s)")
    bench.add_argument("--connections", "-c", type=int, default=16, help="connections (default: %(default)s)")
    bench.add_argument("--workers", default="",
                       help="comma-separated worker counts for the aiorusty scaling curve, e.g. 1,2 "
                            "(default: none)")
    bench.add_argument("--busy-poll-us", type=int, default=None,
                       help="aiorusty server: busy-poll microseconds after activity (default: the loop's, 100)")
    bench.add_argument("--server-cpu", type=int, default=0, help="core of the server (default: %(default)s)")
    bench.add_argument("--client-cpu", type=int, default=1, help="core of the generator (default: %(default)s)")
    bench.add_argument("--nic", choices=("none", "tap", "afpacket"), default="none",
                       help="root only: also run aiorusty over a real kernel path with wrk as the client in "
                            "a network namespace (default: %(default)s)")
    bench.add_argument("--wrk", action="store_true", help="also load each kernel-loop server with wrk "
                                                          "(aiorusty load vs wrk) (default: off)")
    bench.add_argument("--out", default="", help="results folder (default: ./results/bench-DATE/)")
    bench.add_argument("--no-charts", dest="charts", action="store_false",
                       help="skip the PNG charts (default: draw them when matplotlib is installed)")
    bench.set_defaults(func=_bench)

    tb = sub.add_parser(
        "testbed", help="generator - middlebox - server in network namespaces (root)",
        description="Build (up) or remove (down) the test-bed topology: three network namespaces "
        "(generator, middlebox, server) joined by veth pairs, the middlebox forwarding between them, "
        "optionally impaired with nftables random loss and a tbf rate limit. Idempotent.")
    tb.add_argument("action", choices=("up", "down", "status"), help="build, remove or show the topology")
    tb.add_argument("--prefix", default="rt", help="name prefix of the namespaces and links (default: %(default)s)")
    tb.add_argument("--loss", type=float, default=0.0,
                    help="middlebox: drop this percentage of forwarded packets (nftables numgen random) "
                         "(default: 0)")
    tb.add_argument("--rate", default="", help="middlebox: tbf rate limit per direction, e.g. 100mbit "
                                               "(default: none)")
    tb.add_argument("--both-ways", action="store_true",
                    help="print the commands for the mode where each side runs a server and a generator "
                         "(default: off)")
    tb.set_defaults(func=_testbed)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
