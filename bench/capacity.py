"""How many idle keep-alive connections a server holds, and what each one costs.

    python bench/capacity.py [-n 100000] [--mode shm|tap|kernel] [--loops asyncio,uvloop]
                             [--idle 3] [--json FILE]

An asyncio streams echo server in one process, a client in another. The client opens N
connections (1,000 at a time, all kept open), holds them idle for --idle seconds, then
every connection sends a request and waits for its answer (1,000 at a time, all others
still open). Reported: connections
established and answered, time to establish them, the server process's whole RSS per
connection (read while they are held idle), and the server's memory accounting:
  shm     both processes on aiorusty, joined by an shm link (no kernel in the path);
          stack stats tcp_buffer_bytes, tcp_mem_bytes, tcp_conns
  tap     the server on aiorusty over a tap, kernel clients in a namespace this script
          creates and removes (root); default N 10,000
  kernel  the server on stock asyncio and on uvloop (--loops) over 127.0.0.1, clients on
          kernel sockets bound to 127.0.0.2, .3, ... (20,000 ports each); kernel socket
          memory from /proc/net/sockstat's "mem" pages; default N 10,000
Every phase has a deadline, so the run stops by itself. Figures, never assertions.
"""

import argparse
import asyncio
import errno
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ.get("AIORUSTY_SRC") or ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _machine import describe, write_json  # noqa: E402

BATCH = 1000
PORT = 7100
PER_PORT = 50_000                # connections per server port: one client address has ~64k ports
PER_SOURCE = 20_000              # kernel mode: connections per 127.0.0.x source address
SHM_NET = ("10.81.0.1", "10.81.0.2")
TAP_NET = ("10.82.0.2", "10.82.0.1")   # (stack, kernel side)
PHASE_S = 180


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 1024 if hard == resource.RLIM_INFINITY else min(n + 1024, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


def rss_bytes():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024


def sockstat_mem_bytes():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE")
    return None


def stack_options(n):
    # Defaults everywhere (tables grow, idle connections hold no rings) but the
    # client's source ports, widened as one would widen ip_local_port_range.
    return {"ephemeral_lo": 1024, "ephemeral_hi": 65535}


def new_loop(kind, iface, n):
    if kind == "aiorusty":
        import aiorusty
        return aiorusty.new_event_loop(iface, **stack_options(n))
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


# ---- the server process: echo server, answers "stats" on stdin, exits at EOF

async def echo(reader, writer):
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(args):
    loop = asyncio.get_running_loop()
    ports = range(PORT, PORT + (args.n + PER_PORT - 1) // PER_PORT)
    servers = [await asyncio.start_server(echo, args.host, p, backlog=4096) for p in ports]
    print("ready", flush=True)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while (line := await stdin.readline()).strip() == b"stats":
        out = {"rss_bytes": rss_bytes(), "sockstat_tcp_mem_bytes": sockstat_mem_bytes()}
        stack = getattr(loop, "stack", None)
        if stack is not None:
            st = stack.stats()
            out["stack"] = {k: st.get(k) for k in ("tcp_conns", "tcp_buffer_bytes", "tcp_mem_bytes",
                                                    "tcp_mem_refused", "tcp_conns_refused", "tcp_retransmits",
                                                    "tcp_timeouts", "tx_device_full", "tcp_mem_pressure")}
        print(json.dumps(out), flush=True)
    for s in servers:
        s.close()


# ---- the client process: open, hold, report "held", wait for "go", request all, report

async def client(args):
    loop = asyncio.get_running_loop()
    nports = (args.n + PER_PORT - 1) // PER_PORT
    conns, errors = [], {}
    t0 = time.monotonic()

    async def one(i):
        kw = {}
        if args.sources:
            kw["local_addr"] = (f"127.0.0.{2 + i // PER_SOURCE}", 0)
        try:
            conns.append(await asyncio.open_connection(args.host, PORT + i % nports, **kw))
        except OSError as e:
            key = errno.errorcode.get(e.errno, type(e).__name__)
            errors[key] = errors.get(key, 0) + 1

    deadline = t0 + PHASE_S
    for start in range(0, args.n, BATCH):
        if time.monotonic() > deadline:
            break
        await asyncio.gather(*(one(i) for i in range(start, min(args.n, start + BATCH))))
    established_s = time.monotonic() - t0
    print(json.dumps({"held": len(conns), "establish_s": established_s, "connect_errors": errors}), flush=True)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    await stdin.readline()                      # "go"

    async def ask(i, reader, writer):
        try:
            writer.write(b"req %d\n" % i)
            return await reader.readline() == b"req %d\n" % i
        except OSError:
            return False

    # Asked BATCH at a time (as they were opened): every connection answers, and a
    # burst of N requests in one instant does not become the thing measured.
    t1 = time.monotonic()
    answers = []
    for start in range(0, len(conns), BATCH):
        tasks = [asyncio.ensure_future(ask(i, *conns[i])) for i in range(start, min(len(conns), start + BATCH))]
        left = t1 + PHASE_S - time.monotonic()
        done, late = await asyncio.wait(tasks, timeout=max(left, 0.001))
        for t in late:
            t.cancel()
        answers += [t.result() for t in done if not t.cancelled() and t.exception() is None]
        if late:
            break
    answered_s = time.monotonic() - t1
    for _, w in conns:
        w.close()
    await asyncio.sleep(0.5)                    # let the closes go out before the loop ends
    stack = getattr(loop, "stack", None)
    counters = ("tcp_retransmits", "tcp_timeouts", "tx_device_full", "tx_device_busy", "tcp_mem_pressure",
                "arp_unresolved_drops", "events_dropped")
    client_stack = {k: v for k, v in stack.stats().items() if k in counters} if stack is not None else None
    print(json.dumps({"answered": sum(answers), "answer_s": answered_s, "client_stack": client_stack}), flush=True)


# ---- the orchestrator

def child(prefix, role, kind, host, n, iface="", sources=False):
    argv = prefix + [sys.executable, os.path.abspath(__file__), "--role", role, "--kind", kind,
                     "--host", host, "-n", str(n), "--iface", iface] + (["--sources"] if sources else [])
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))


def readline(proc, what):
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{what} exited ({proc.poll()}) before reporting")
    return line.strip()


def one_run(label, n, idle, server_cmd, client_cmd):
    server = child(*server_cmd)
    cl = None
    try:
        assert readline(server, "server") == "ready"
        before = dict(server=None)
        server.stdin.write("stats\n")
        server.stdin.flush()
        before = json.loads(readline(server, "server"))
        cl = child(*client_cmd)
        held = json.loads(readline(cl, "client"))
        time.sleep(idle)
        server.stdin.write("stats\n")
        server.stdin.flush()
        during = json.loads(readline(server, "server"))
        cl.stdin.write("go\n")
        cl.stdin.flush()
        done = json.loads(readline(cl, "client"))
    finally:
        for p in (cl, server):
            if p is not None:
                try:
                    p.stdin.close()
                    p.wait(timeout=30)
                except (subprocess.TimeoutExpired, BrokenPipeError):
                    p.kill()
                    p.wait()
    per_conn = (during["rss_bytes"] - before["rss_bytes"]) / held["held"] if held["held"] else None
    result = {"label": label, "requested": n, "established": held["held"], "establish_s": round(held["establish_s"], 2),
              "connect_errors": held["connect_errors"], "answered": done["answered"],
              "answer_s": round(done["answer_s"], 2), "server_rss_bytes": during["rss_bytes"],
              "server_rss_per_conn_bytes": round(per_conn) if per_conn else None,
              "stack": during.get("stack"), "client_stack": done.get("client_stack"),
              "kernel_tcp_mem_bytes": during["sockstat_tcp_mem_bytes"] if "stack" not in during else None}
    print(f"{label:>10}: {result['established']}/{n} established in {result['establish_s']} s, "
          f"{result['answered']} answered in {result['answer_s']} s, server RSS "
          f"{during['rss_bytes'] / 2**20:.1f} MiB ({result['server_rss_per_conn_bytes']} B/conn over idle start)"
          + (f", stack {result['stack']}" if result["stack"] else f", kernel TCP mem {result['kernel_tcp_mem_bytes']} B")
          + (f", connect errors {result['connect_errors']}" if result["connect_errors"] else "")
          + (f", client stack {result['client_stack']}" if result["client_stack"] else ""), flush=True)
    return result


def run_shm(n, idle):
    name = f"rcap{os.getpid()}"
    a, b = SHM_NET
    return one_run("shm", n, idle, ([], "server", "aiorusty", a, n, f"shm:{name},ip={a}/24"),
                   ([], "client", "aiorusty", a, n, f"shm:{name},ip={b}/24"))


def run_tap(n, idle):
    if os.geteuid() != 0:
        raise SystemExit("--mode tap needs root: it creates a network namespace and a tap")
    ns, tap = f"rcapns{os.getpid()}", f"rcap{os.getpid()}"[:15]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        stack_ip, host_ip = TAP_NET
        inns = ["ip", "netns", "exec", ns]
        return one_run("tap", n, idle,
                       (inns, "server", "aiorusty", stack_ip, n, f"tap:{tap},ip={stack_ip}/24,host={host_ip}/24"),
                       (inns, "client", "asyncio", stack_ip, n))
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def run_kernel(n, idle, kind):
    return one_run(kind, n, idle, ([], "server", kind, "127.0.0.1", n), ([], "client", "asyncio", "127.0.0.1", n, "", True))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=None, help="connections (shm: 100000, tap/kernel: 10000)")
    ap.add_argument("--mode", choices=["shm", "tap", "kernel"], default="shm")
    ap.add_argument("--loops", default="asyncio,uvloop", help="kernel mode: the loops to compare")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds the connections are held idle")
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("--role", choices=["server", "client"], help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="aiorusty", help=argparse.SUPPRESS)
    ap.add_argument("--host", default="", help=argparse.SUPPRESS)
    ap.add_argument("--iface", default="", help=argparse.SUPPRESS)
    ap.add_argument("--sources", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        raise_nofile(args.n)
        loop = new_loop(args.kind, args.iface, args.n)
        try:
            loop.run_until_complete((serve if args.role == "server" else client)(args))
            # End the handlers still open (as asyncio.run would) before the loop closes.
            pending = asyncio.all_tasks(loop)
            for t in pending:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            loop.close()
        return
    n = args.n or (100_000 if args.mode == "shm" else 10_000)
    if args.mode == "shm":
        results = [run_shm(n, args.idle)]
    elif args.mode == "tap":
        results = [run_tap(n, args.idle)]
    else:
        results = [run_kernel(n, args.idle, kind) for kind in args.loops.split(",")]
    write_json(args.json, {**describe(mode=args.mode, idle_s=args.idle), "results": results})


if __name__ == "__main__":
    main()
