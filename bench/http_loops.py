"""HTTP req/s and server CPU per request: the same three servers on asyncio, uvloop and aiorusty.

    python bench/http_loops.py [--quick] [--rounds 3] [--duration 5] [--conns 32]
                               [--apps httptools,streams,aiohttp] [--loops asyncio,uvloop,aiorusty]
                               [--body BYTES] [--json bench/results/http_loops.json]

Servers (bench/apps/): a raw asyncio.Protocol server parsing with httptools, an
asyncio streams server and an aiohttp.web app, each answering GET / with a
14-byte body over keep-alive connections.

Topology (root; everything is created here and removed on exit):

    server netns  [server, pinned to core 0]                 client netns  [wrk -t1, pinned to core 1]
      asyncio/uvloop: kernel TCP on veth 10.N.1.1  <-- veth -->  10.N.1.2
      aiorusty: user-space stack 10.N.K.2 on a tap whose kernel side is moved into the client
                netns (10.N.K.1), so the only kernel in the aiorusty path is the client's.

RPS is enabled on every receiving interface (the server-side veth steers to
core 0, client-side veth and tap to core 1) so each side's kernel receive work
runs on its own core instead of on the sender's.

Per run: requests/s (wrk), the server process's CPU time (/proc/PID/stat
utime+stime) per request, and core 0's busy time (/proc/stat, everything but
idle and iowait) per request, which also counts kernel work done for the server
outside its process (softirqs of its veth) - and whatever other process ran on
core 0 meanwhile (on a shared machine, compare it within a round only). The
process figure flatters kernel-stack servers: their TCP receive work runs in
softirq context and is mostly not charged to them, while aiorusty's whole
stack runs in its process. With --syscalls, perf counts the server's system
calls per request. At exit each aiorusty server reports its stack polls and
sleeps (requests per poll = batching). The loops of an app run alternated
(A B C A B C ...), every server started once per app and warmed up; figures are
medians over the rounds and ratios against uvloop are medians of per-round
ratios (same round, so the machine's drift cancels). This machine is noisy:
single runs spread by 20-50%.

Loop variants for A/B comparisons in one run: `aiorusty:bp=0` (AIORUSTY_BUSY_POLL_US=0),
`aiorusty:src=/path/to/other/checkout` (another build of aiorusty),
`aiorusty:dev=afpacket` (the stack on AF_PACKET over a veth of its own whose other
end is in the client netns, instead of a tap), combinable with `+`:
`aiorusty:bp=0+src=/tmp/base`.

Large responses: --body N makes every app answer with an N-byte body, one `bytes`
object written whole (BENCH_BODY_BYTES, bench/apps/_serve.py); Gbit/s of body is
reported beside req/s. E.g. 1 MiB bodies over tap, AF_PACKET and uvloop's veth:

    python bench/http_loops.py --apps httptools --body 1048576 --conns 4 \
        --loops uvloop,aiorusty,aiorusty:dev=afpacket --json bench/results/http_1mib.json
Numbers are printed and written as JSON; they are never test assertions.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time

from _machine import cpu_model, write_json     # bench/, the script's own directory

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
APPS = os.path.join(HERE, "apps")
HZ = os.sysconf("SC_CLK_TCK")
SERVER_CORE, CLIENT_CORE = 0, 1
PORT = 8080
BODY_BYTES = 14         # --body sets it (the apps' default hello)


# -- small helpers -------------------------------------------------------------------

def sh(*cmd, ns=None, check=True, timeout=30):
    argv = [str(c) for c in cmd]
    if ns:
        argv = ["ip", "netns", "exec", ns] + argv
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


def name(prefix):
    name.n = getattr(name, "n", 0) + 1
    return f"{prefix}{os.getpid() % 100000}{name.n}"[:15]


def proc_cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])           # utime + stime (fields 14, 15)


def core_ticks(core):
    """(busy, total) jiffies of one core from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                v = [int(x) for x in line.split()[1:]]
                total = sum(v[:8])                      # user..steal (guest is inside user)
                return total - v[3] - v[4], total
    raise RuntimeError(f"cpu{core} not in /proc/stat")


def set_rps(ns, dev, core):
    mask = format(1 << core, "x")
    sh("sh", "-c", f"echo {mask} > /sys/class/net/{dev}/queues/rx-0/rps_cpus", ns=ns)


def versions():
    out = {"python": platform.python_version()}
    for mod in ("uvloop", "httptools", "aiohttp"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception as exc:         # noqa: BLE001 - recorded, not fatal
            out[mod] = f"unavailable ({exc.__class__.__name__})"
    try:
        out["wrk"] = sh("wrk", "-v", check=False).stdout.split("\n")[0].strip()
    except Exception:                    # noqa: BLE001
        out["wrk"] = "?"
    out["aiorusty"] = sh("git", "-C", ROOT, "rev-parse", "--short", "HEAD", check=False).stdout.strip()
    return out


# -- loop variants ---------------------------------------------------------------------

def parse_loop(spec):
    """'aiorusty:bp=0+src=/x' -> ('aiorusty', {'bp': '0', 'src': '/x'})."""
    kind, _, opts = spec.partition(":")
    if kind not in ("asyncio", "uvloop", "aiorusty"):
        raise SystemExit(f"unknown loop {spec!r}")
    options = dict(o.split("=", 1) for o in opts.split("+") if o)
    bad = set(options) - {"bp", "src", "dev"}
    if bad or (options and kind != "aiorusty") or options.get("dev", "tap") not in ("tap", "afpacket"):
        raise SystemExit(f"loop {spec!r}: options bp=, src=, dev=tap|afpacket apply to aiorusty only")
    return kind, options


def describe_loop(spec):
    kind, opts = parse_loop(spec)
    out = {"loop": kind}
    if "bp" in opts:
        out["AIORUSTY_BUSY_POLL_US"] = int(opts["bp"])
    out["device"] = opts.get("dev", "tap") if kind == "aiorusty" else "veth (kernel TCP)"
    if "src" in opts:
        rev = os.path.join(opts["src"], "REVISION")       # a `git archive` copy records its commit here
        if os.path.exists(rev):
            with open(rev) as f:
                out["aiorusty_revision"] = f.read().strip()
        else:
            out["aiorusty_revision"] = sh("git", "-C", opts["src"], "rev-parse", "--short", "HEAD",
                                          check=False).stdout.strip() or "unknown"
    return out


# -- the topology ------------------------------------------------------------------------

class Bed:
    """Two namespaces, a veth between them, taps made by aiorusty servers moved into the client side."""

    def __init__(self):
        self.net = 100 + os.getpid() % 50
        self.sns, self.cns = name("rbs"), name("rbc")
        self.veth_s, self.veth_c = name("rbvs"), name("rbvc")
        self.server_ip, self.client_ip = f"10.{self.net}.1.1", f"10.{self.net}.1.2"
        self.taps = 0

    def __enter__(self):
        for ns in (self.sns, self.cns):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "link", "add", self.veth_s, "netns", self.sns, "type", "veth", "peer", "name", self.veth_c,
           "netns", self.cns)
        for ns, dev, ip in ((self.sns, self.veth_s, self.server_ip), (self.cns, self.veth_c, self.client_ip)):
            sh("ip", "addr", "add", f"{ip}/24", "dev", dev, ns=ns)
            sh("ip", "link", "set", dev, "up", ns=ns)
        set_rps(self.sns, self.veth_s, SERVER_CORE)
        set_rps(self.cns, self.veth_c, CLIENT_CORE)
        return self

    def __exit__(self, *exc):
        for ns in (self.sns, self.cns):
            sh("ip", "netns", "del", ns, check=False)

    def new_tap(self):
        """(tap name, stack ip, host ip) for the next aiorusty server."""
        self.taps += 1
        k = 1 + self.taps
        return name("rbt"), f"10.{self.net}.{k}.2", f"10.{self.net}.{k}.1"

    def move_tap(self, tap, host_ip):
        """The tap's kernel end goes into the client namespace (the server keeps its fd)."""
        sh("ip", "link", "set", tap, "netns", self.cns, ns=self.sns)
        sh("sysctl", "-qw", f"net/ipv6/conf/{tap}/disable_ipv6=1", ns=self.cns, check=False)
        sh("ip", "addr", "add", f"{host_ip}/24", "dev", tap, ns=self.cns)
        sh("ip", "link", "set", tap, "up", ns=self.cns)
        set_rps(self.cns, tap, CLIENT_CORE)

    def new_veth(self, host_ip):
        """A veth for an AF_PACKET server: its end in the server netns carries no address
        (the stack answers for its own), the other end is host_ip in the client netns."""
        dev_s, dev_c = name("rbas"), name("rbac")
        sh("ip", "link", "add", dev_s, "netns", self.sns, "type", "veth", "peer", "name", dev_c, "netns", self.cns)
        sh("sysctl", "-qw", f"net/ipv6/conf/{dev_s}/disable_ipv6=1", ns=self.sns, check=False)
        sh("ip", "link", "set", dev_s, "up", ns=self.sns)
        sh("ip", "addr", "add", f"{host_ip}/24", "dev", dev_c, ns=self.cns)
        sh("ip", "link", "set", dev_c, "up", ns=self.cns)
        set_rps(self.cns, dev_c, CLIENT_CORE)
        return dev_s, dev_c


class Server:
    def __init__(self, bed, app, loop_spec, port):
        self.bed, self.app, self.spec, self.port = bed, app, loop_spec, port
        kind, opts = parse_loop(loop_spec)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("AIORUSTY_IFACE", None)
        self.tap = self.client_dev = None
        if kind == "aiorusty":
            self.tap, self.ip, host_ip = bed.new_tap()
            env["AIORUSTY_IFACE"] = f"tap:{self.tap},ip={self.ip}/24"
            if opts.get("dev") == "afpacket":
                veth, self.client_dev = bed.new_veth(host_ip)
                env["AIORUSTY_IFACE"] = f"afpacket:{veth},ip={self.ip}/24"
                self.tap = None
            if "bp" in opts:
                env["AIORUSTY_BUSY_POLL_US"] = opts["bp"]
            src = opts.get("src", ROOT)
        else:
            self.ip, src = bed.server_ip, ROOT
        env["PYTHONPATH"] = src
        script = os.path.join(src, "bench", "apps", f"{app}_app.py")
        if not os.path.exists(script):
            script = os.path.join(APPS, f"{app}_app.py")
        argv = ["ip", "netns", "exec", bed.sns, "taskset", "-c", str(SERVER_CORE), sys.executable, script,
                kind, self.ip, str(port)]
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._readline(30)
        if not line.startswith("ready"):
            self.proc.kill()
            err = self.proc.communicate()[1]
            raise RuntimeError(f"{app} on {loop_spec} did not start: {line!r} {err[-2000:]}")
        self.pid = int(line.split()[1])                 # ip netns exec and taskset exec: the same process
        if self.tap:
            bed.move_tap(self.tap, host_ip)
            self.client_dev = self.tap

    def _readline(self, timeout):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        ok = sel.select(timeout)
        sel.close()
        return self.proc.stdout.readline() if ok else ""

    def url(self):
        return f"http://{self.ip}:{self.port}/"

    def stop(self):
        """Stop the server; returns aiorusty's (stack polls, sleeps) over its life, or None."""
        out = ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                out = self.proc.communicate(timeout=10)[0]
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        m = re.search(r"^stats (\d+) (\d+)", out or "", re.M)
        return (int(m.group(1)), int(m.group(2))) if m else None


# -- one measurement -----------------------------------------------------------------------

def parse_wrk(out):
    def num(pattern, conv=float):
        m = re.search(pattern, out)
        return conv(m.group(1)) if m else None

    def ms(text):
        v, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    lat = {p: ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    errors += num(r"Non-2xx or 3xx responses: (\d+)", int) or 0
    return {"rps": num(r"Requests/sec:\s+([\d.]+)"), "requests": num(r"(\d+) requests in", int),
            "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "errors": errors}


def run_wrk(bed, server, duration, conns):
    argv = ["taskset", "-c", str(CLIENT_CORE), "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency",
            server.url()]
    return sh(*argv, ns=bed.cns, timeout=duration + 30).stdout


def link_packets(ns, dev):
    """(rx, tx) packets of a device as the client-side kernel counts them."""
    st = json.loads(sh("ip", "-n", ns, "-j", "-s", "link", "show", "dev", dev).stdout)[0]["stats64"]
    return st["rx"]["packets"], st["tx"]["packets"]


def measure(bed, server, duration, conns, syscalls=False):
    dev = server.client_dev or bed.veth_c
    (rx0, tx0) = link_packets(bed.cns, dev)
    counter = None
    if syscalls:        # perf counts the server's system calls (a tracepoint: no PMU needed)
        counter = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(server.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    c0, (b0, t0), w0 = proc_cpu_ticks(server.pid), core_ticks(SERVER_CORE), time.monotonic()
    out = run_wrk(bed, server, duration, conns)
    c1, (b1, t1), w1 = proc_cpu_ticks(server.pid), core_ticks(SERVER_CORE), time.monotonic()
    (rx1, tx1) = link_packets(bed.cns, dev)
    r = parse_wrk(out)
    if counter is not None:
        counter.send_signal(signal.SIGINT)
        err = counter.communicate(timeout=10)[1]
        m = re.search(r"^(\d+),", err, re.M)
        r["syscalls_per_req"] = int(m.group(1)) / max(1, r["requests"] or 0) if m else None
    if not r["requests"]:
        raise RuntimeError(f"wrk got no responses from {server.app} on {server.spec}:\n{out}")
    us_per_tick = 1e6 / HZ
    r["proc_cpu_us_per_req"] = (c1 - c0) * us_per_tick / r["requests"]
    r["core_busy_us_per_req"] = (b1 - b0) * us_per_tick / r["requests"]
    r["proc_cpu_share"] = (c1 - c0) / HZ / (w1 - w0)
    # frames per request as the client side's kernel counts them (its rx = the server's tx)
    r["server_tx_frames_per_req"] = (rx1 - rx0) / r["requests"]
    r["server_rx_frames_per_req"] = (tx1 - tx0) / r["requests"]
    r["core_busy_share"] = (b1 - b0) / max(1, t1 - t0)
    r["body_gbps"] = r["rps"] * BODY_BYTES * 8 / 1e9
    return r


# -- the whole run -----------------------------------------------------------------------------

FIELDS = ("rps", "proc_cpu_us_per_req", "core_busy_us_per_req", "p50_ms", "p99_ms")


def summarize(runs, loops):
    """Medians per loop, plus per-round ratios against uvloop (when uvloop ran)."""
    out = {}
    for spec in loops:
        rs = runs[spec]
        s = {f: statistics.median(r[f] for r in rs) for f in FIELDS if all(r[f] is not None for r in rs)}
        s["rps_min"], s["rps_max"] = min(r["rps"] for r in rs), max(r["rps"] for r in rs)
        for f in ("body_gbps", "proc_cpu_share", "server_tx_frames_per_req", "server_rx_frames_per_req", "syscalls_per_req"):
            if all(r.get(f) is not None for r in rs):
                s[f] = statistics.median(r[f] for r in rs)
        s["errors"] = sum(r["errors"] for r in rs)
        if "uvloop" in runs and spec != "uvloop":
            for f in ("rps", "proc_cpu_us_per_req", "core_busy_us_per_req"):
                s[f"{f}_vs_uvloop"] = statistics.median(a[f] / b[f] for a, b in zip(rs, runs["uvloop"]))
        out[spec] = s
    return out


def print_table(results, loops):
    hdr = (f"{'app':10s} {'loop':26s} {'req/s':>8s} {'min-max':>13s} {'Gbit/s':>7s} {'cpu us/req':>10s} {'core0 us/req':>12s} "
           f"{'cpu%':>5s} {'p50 ms':>7s} {'p99 ms':>7s} {'rps/uv':>6s} {'cpu/uv':>6s} {'core/uv':>7s}")
    print(hdr)
    print("-" * len(hdr))
    for app, res in results.items():
        for spec in loops:
            s = res["summary"][spec]
            rel = (f"{s['rps_vs_uvloop']:6.2f} {s['proc_cpu_us_per_req_vs_uvloop']:6.2f} "
                   f"{s['core_busy_us_per_req_vs_uvloop']:7.2f}") if "rps_vs_uvloop" in s else f"{'':6s} {'':6s} {'':7s}"
            print(f"{app:10s} {spec:26s} {s['rps']:8.0f} {s['rps_min']:6.0f}-{s['rps_max']:<6.0f} {s['body_gbps']:7.2f} "
                  f"{s['proc_cpu_us_per_req']:10.1f} {s['core_busy_us_per_req']:12.1f} "
                  f"{s['proc_cpu_share'] * 100:5.0f} {s.get('p50_ms', float('nan')):7.3f} {s.get('p99_ms', float('nan')):7.2f} {rel}")
    print("cpu us/req: server process utime+stime per request; core0 us/req: server core busy time per request "
          "(incl. its kernel receive work); */uv: median of same-round ratios against uvloop")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apps", default="httptools,streams,aiohttp")
    ap.add_argument("--loops", default="asyncio,uvloop,aiorusty")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--conns", type=int, default=32, help="wrk connections (one wrk thread)")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of wrk per server before measuring")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 2 s (a smoke run, not for the record)")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "http_loops.json"))
    ap.add_argument("--no-json", action="store_true")
    ap.add_argument("--body", type=int, default=0, help="body bytes per response (default: the 14-byte hello)")
    ap.add_argument("--syscalls", action="store_true", help="also count the server's system calls per request (perf)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 2, 2
    if os.geteuid() != 0:
        raise SystemExit("needs root: creates network namespaces, a veth pair and taps")
    if os.cpu_count() < 2:
        raise SystemExit("needs two cores (server on core 0, wrk on core 1)")
    apps = args.apps.split(",")
    global BODY_BYTES
    if args.body:
        os.environ["BENCH_BODY_BYTES"] = str(args.body)
        BODY_BYTES = args.body
    loops = args.loops.split(",")
    for spec in loops:
        parse_loop(spec)
    results = {}
    started = datetime.datetime.now(datetime.timezone.utc)
    with Bed() as bed:
        for app in apps:
            with contextlib.ExitStack() as stack:
                servers = {}
                for i, spec in enumerate(loops):
                    servers[spec] = Server(bed, app, spec, PORT + i)
                    stack.callback(servers[spec].stop)
                served = {spec: 0 for spec in loops}
                for spec in loops:
                    if args.warmup:
                        served[spec] += parse_wrk(run_wrk(bed, servers[spec], args.warmup, args.conns))["requests"] or 0
                runs = {spec: [] for spec in loops}
                for rnd in range(args.rounds):
                    order = loops if rnd % 2 == 0 else loops[::-1]     # A B C, C B A, ...: no loop always first
                    for spec in order:
                        r = measure(bed, servers[spec], args.duration, args.conns, args.syscalls)
                        runs[spec].append(r)
                        served[spec] += r["requests"]
                        print(f"  {app:9s} round {rnd + 1} {spec:26s} {r['rps']:8.0f} req/s  "
                              f"{r['body_gbps']:6.2f} Gbit/s  {r['proc_cpu_us_per_req']:6.1f} cpu us/req  {r['core_busy_us_per_req']:6.1f} "
                              f"core0 us/req  p99 {r['p99_ms']} ms  frames/req out {r['server_tx_frames_per_req']:.2f} "
                              f"in {r['server_rx_frames_per_req']:.2f}"
                              + (f"  syscalls/req {r['syscalls_per_req']:.2f}" if r.get("syscalls_per_req") else ""),
                              flush=True)
                ticks = {}
                for spec in loops:
                    st = servers[spec].stop()
                    if st:
                        ticks[spec] = {"stack_polls": st[0], "sleeps": st[1],
                                       "requests_per_poll": served[spec] / max(1, st[0])}
            results[app] = {"runs": runs, "summary": summarize(runs, loops), "ticks": ticks}
            for spec, t in ticks.items():
                print(f"  {app:9s} {spec}: {t['stack_polls']} stack polls, {t['sleeps']} sleeps, "
                      f"{t['requests_per_poll']:.2f} requests per poll (whole life, idle gaps included)")
    print()
    print_table(results, loops)
    record = {
        "bench": "http_loops", "date": started.isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable), "bench/http_loops.py"] + sys.argv[1:]),
        "machine": platform.node(), "kernel": platform.release(), "cpu": cpu_model(), "cores": os.cpu_count(),
        "versions": versions(),
        "devices": {"asyncio/uvloop": "veth (kernel TCP on both sides)",
                    "aiorusty": "tap (virtio-net header), kernel side in the client netns",
                    "aiorusty:dev=afpacket": "AF_PACKET (TPACKET_V2) on a veth whose other end is in the client netns"},
        "pinning": {"server": f"core {SERVER_CORE} (taskset)", "wrk": f"core {CLIENT_CORE} (taskset, -t1)",
                    "rps": f"server-side veth -> core {SERVER_CORE}; client-side veth and tap -> core {CLIENT_CORE}"},
        "body_bytes": BODY_BYTES,
        "wrk": {"duration_s": args.duration, "connections": args.conns, "threads": 1, "rounds": args.rounds,
                "order": "alternated, reversed every other round"},
        "busy_poll_us": os.environ.get("AIORUSTY_BUSY_POLL_US", "default"),
        "loops": {spec: describe_loop(spec) for spec in loops},
        "results": results,
    }
    if not args.no_json:
        write_json(args.json, record, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
