"""`aiorusty bench`: the same server on asyncio, uvloop and aiorusty, side by side.

Owns: the benchmark plan (loops x scenarios, alternated A B C A B C over
rounds, medians), running each pair of processes - `aiorusty serve` pinned to
the server core and `aiorusty load` pinned to the client core, as separate
processes started from the CLI - and collecting their JSON; the optional
wrk run (an independent client against the kernel-loop servers), the
aiorusty workers scaling curve, and the outputs (table, JSON, Markdown, PNG).
Not: serving or loading (serve.py, load.py).

The embedded default needs no root: aiorusty's server and generator each run
their own stack on one side of an shm link; asyncio and uvloop servers listen
on 127.0.0.1 and are loaded by the same generator code on the kernel (on
uvloop, the fastest kernel client we have). Server CPU per request is the
server process's user+system CPU time from its first request to its stop,
divided by the requests it answered; the server core's busy time from
/proc/stat is recorded next to it (it includes kernel work done on that core
for either side).
"""

import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import time

from .report import machine_info

SCENARIOS = {
    # name: (path, load flags, connections cap, what)
    "small": ("/64", [], None, "keep-alive GET of a 64-byte page"),
    "pipeline": ("/64", ["--pipeline", "16"], None, "16 pipelined GETs of a 64-byte page per connection"),
    "newconn": ("/64", ["--new-connection"], None, "one request per connection (client closes)"),
    "bulk": ("/1m", [], 4, "keep-alive GET of a 1 MiB page"),
}
SERVER_IP, CLIENT_IP = "10.78.0.1", "10.78.0.2"
# Copy ceilings (xcore Gbps) further apart than this make a ratio "mixed" (marked *).
MIXED_CEILING = 2.0
MIXED_NOTE = ("* the two medians were measured at copy ceilings more than 2x apart (xcore Gbps): "
              "the machine changed speed between them; compare the runs of one round in bench.json")


class BenchError(RuntimeError):
    pass


def _stop(srv):
    """SIGTERM a server we started (it writes its stats on the way out); kill it after 20 s."""
    srv.send_signal(signal.SIGTERM)
    try:
        srv.wait(20)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()


def _core_us_per_req(before, after, requests):
    """A core's busy time between two _cpu_busy() readings, per response (us); None for none."""
    return (after[0] - before[0]) / os.sysconf("SC_CLK_TCK") * 1e6 / requests if requests else None


def xcore_gbps(cpu_tx, cpu_rx, seconds=0.2):
    """Gbps two threads pinned to cpu_tx and cpu_rx copy 1500-byte frames through an
    shm-shaped ring (nic/_core/probe.c): the machine's ceiling for an shm bulk run, which
    on this VM changes over minutes. None if it cannot be measured (one core, no pinning)."""
    from .._rusty import lib
    if cpu_tx == cpu_rx:
        return None
    gbps = lib.rusty_probe_xcore_gbps(cpu_tx, cpu_rx, 1500, int(seconds * 1e6))
    return gbps if gbps >= 0 else None


def _cpu_busy(core):
    """(busy, total) jiffies of one core from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{core} "):
                    v = [int(x) for x in line.split()[1:]]
                    idle = v[3] + (v[4] if len(v) > 4 else 0)
                    return sum(v) - idle, sum(v)
    except OSError:
        pass
    return 0, 0


def _proc_cpu(pid):
    """user + system CPU seconds of a process, from /proc/PID/stat (fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _wait_line(proc, timeout, what, needle=b"\n"):
    end = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < end:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            if needle in buf:
                return buf.decode(errors="replace")
        if proc.poll() is not None:
            break
    err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
    raise BenchError(f"{what} did not start within {timeout:.0f} s: {buf.decode(errors='replace')}{err}")


class Runner:
    def __init__(self, args, outdir):
        self.args = args
        self.outdir = outdir
        self.tmp = os.path.join(outdir, "raw")
        os.makedirs(self.tmp, exist_ok=True)
        self.n = 0
        self.py = [sys.executable, "-m", "aiorusty"]

    def _server_cmd(self, loop, port, name, workers, cpus, stats):
        cmd = self.py + ["serve", "-q", "--port", str(port), "--workers", str(workers), "--cpus", cpus,
                         "--stats-json", stats]
        if loop == "asyncio":
            cmd += ["--kernel", "--host", "127.0.0.1"]
        elif loop == "uvloop":
            cmd += ["--uvloop", "--host", "127.0.0.1"]
        else:
            cmd += ["--iface", f"shm:{name},ip={SERVER_IP}/24"]
            if self.args.busy_poll_us is not None:
                cmd += ["--busy-poll-us", str(self.args.busy_poll_us)]
        return cmd

    def run_pair(self, loop, scenario, workers=1, client="aiorusty-load"):
        """One measured run; a dict of figures."""
        args = self.args
        self.n += 1
        tag = f"{self.n:03d}-{loop}-{scenario}-w{workers}-{client}"
        port = 18000 + self.n
        name = f"bench{os.getpid()}x{self.n}"
        stats = os.path.join(self.tmp, f"{tag}-server.json")
        ljson = os.path.join(self.tmp, f"{tag}-load.json")
        ncores = len(os.sched_getaffinity(0))
        if workers == 1:
            scpus, ccpus = str(args.server_cpu), str(args.client_cpu)
        else:
            scpus = ",".join(str(i % ncores) for i in range(workers))
            ccpus = ",".join(str((workers + i) % ncores) for i in range(workers))
        path, flags, cap, _ = SCENARIOS[scenario]
        conns = min(args.connections, cap) if cap else args.connections
        conns = max(conns, workers)
        srv = subprocess.Popen(self._server_cmd(loop, port, name, workers, scpus, stats),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _wait_line(srv, 20, f"{loop} server", b"workers ready" if workers > 1 else b"\n")
            host = SERVER_IP if loop == "aiorusty" else "127.0.0.1"
            url = f"http://{host}:{port}{path}"
            b0 = _cpu_busy(args.server_cpu)
            k0 = _cpu_busy(args.client_cpu)
            c0 = _proc_cpu(srv.pid) if workers == 1 else None
            t0 = time.monotonic()
            if client == "wrk":
                load = self._wrk(url, conns, scenario)
            else:
                cmd = self.py + ["load", url, "-q", "-d", str(args.duration), "-c", str(conns),
                                 "--workers", str(workers), "--cpus", ccpus, "--json", ljson] + flags
                if loop == "aiorusty":
                    cmd += ["--iface", f"shm:{name},ip={CLIENT_IP}/24"]
                else:
                    cmd += ["--uvloop"]
                res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     timeout=args.duration + 90)
                if res.returncode != 0 or not os.path.exists(ljson):
                    raise BenchError(f"load failed ({loop}, {scenario}): {res.stderr.decode(errors='replace')[-2000:]}")
                with open(ljson) as f:
                    load = json.load(f)
            b1 = _cpu_busy(args.server_cpu)
            k1 = _cpu_busy(args.client_cpu)
            c1 = _proc_cpu(srv.pid) if workers == 1 else None
            wall = time.monotonic() - t0
        finally:
            _stop(srv)
        if srv.returncode != 0 or not os.path.exists(stats):
            raise BenchError(f"{loop} server failed: {srv.stderr.read().decode(errors='replace')[-2000:]}")
        with open(stats) as f:
            server = json.load(f)
        hz = os.sysconf("SC_CLK_TCK")
        if c0 is not None and c1 is not None and load["requests"]:
            # The server process's CPU over the load window (from the generator's start to its
            # end, startup excluded), per response the generator received.
            cpu_s, cpu_per = c1 - c0, (c1 - c0) * 1e6 / load["requests"]
        else:
            cpu_s, cpu_per = server.get("cpu_s"), server.get("cpu_us_per_request")
        row = {
            "loop": loop, "scenario": scenario, "workers": workers, "client": client,
            "connections": conns, "requests": load["requests"], "rps": load["requests_per_s"],
            "goodput_gbps": load["goodput_gbps"], "wire_gbps": load.get("wire_gbps"),
            "p50_us": load["latency_us"]["p50"], "p99_us": load["latency_us"]["p99"],
            "errors": load.get("errors", {}), "server_requests": server["requests"],
            "server_cpu_s": cpu_s, "server_cpu_us_per_req": cpu_per,
            "server_core_busy_s": (b1[0] - b0[0]) / hz, "wall_s": wall,
            # The generator's core, busy time per response (one worker; a busy-polling
            # generator counts its spinning): what load costs to make, aiorusty load vs wrk.
            "client_core_us_per_req": _core_us_per_req(k0, k1, load["requests"]) if workers == 1 else None,
            "server_cores": scpus, "client_cores": ccpus,
        }
        return row

    # -- root: real kernel paths, wrk as the client -------------------------------------------------

    def nic_setup(self, nic):
        """Namespaces for --nic: the server's (veth end; kernel loops listen on its kernel address,
        aiorusty owns it through AF_PACKET with an address of its own) and wrk's. For tap the
        aiorusty server's tap gets its kernel side in wrk's namespace."""
        tag = f"{os.getpid() % 100000}"
        self.nic = nic
        self.ns_srv, self.ns_cli = f"bs{tag}", f"bc{tag}"
        self.veth_srv, self.veth_cli, self.tap = f"bvs{tag}", f"bvc{tag}", f"btap{tag}"
        sh = self._sh
        for n in (self.ns_srv, self.ns_cli):
            sh("ip", "netns", "add", n)
            sh("ip", "netns", "exec", n, "ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", self.veth_srv, "netns", self.ns_srv, "type", "veth", "peer", "name",
           self.veth_cli, "netns", self.ns_cli)
        for n, dev, ip in ((self.ns_srv, self.veth_srv, "10.94.0.2/24"), (self.ns_cli, self.veth_cli, "10.94.0.1/24")):
            sh("ip", "netns", "exec", n, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1", check=False)
            sh("ip", "netns", "exec", n, "ip", "addr", "add", ip, "dev", dev)
            sh("ip", "netns", "exec", n, "ip", "link", "set", dev, "up")
            # AF_PACKET stacks take frames up to the MTU: no TSO/GSO super-frames from the kernel.
            sh("ip", "netns", "exec", n, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", check=False)
            # RPS: each side's kernel receive work on its own core (the advice).
            mask = "1" if n == self.ns_srv else "2"
            sh("ip", "netns", "exec", n, "sh", "-c", f"echo {mask} > /sys/class/net/{dev}/queues/rx-0/rps_cpus",
               check=False)

    def nic_teardown(self):
        for n in (getattr(self, "ns_srv", None), getattr(self, "ns_cli", None)):
            if n:
                self._sh("ip", "netns", "del", n, check=False)

    @staticmethod
    def _sh(*cmd, check=True):
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        if check and res.returncode != 0:
            raise BenchError(f"`{' '.join(cmd)}`: {res.stderr.strip()}")
        return res

    def run_nic(self, loop, scenario, ours=False):
        """One run over the real kernel path: server in its namespace, wrk (or, with ours=True,
        `aiorusty load` on its own stack over AF_PACKET on wrk's veth) in the other."""
        args = self.args
        self.n += 1
        tag = f"{self.n:03d}-{loop}-{scenario}-{self.nic}-wrk"
        port = 18000 + self.n
        stats = os.path.join(self.tmp, f"{tag}-server.json")
        path, _flags, cap, _ = SCENARIOS[scenario]
        conns = min(args.connections, cap) if cap else args.connections
        cmd = ["ip", "netns", "exec", self.ns_srv] + self.py + [
            "serve", "-q", "--port", str(port), "--workers", "1", "--cpus", str(args.server_cpu),
            "--stats-json", stats]
        client_ns = self.ns_cli
        if loop == "aiorusty":
            if self.nic == "afpacket":
                cmd += ["--iface", f"afpacket:{self.veth_srv},ip=10.94.0.3/24"]
                host = "10.94.0.3"
            else:
                # The tap lives in the server's namespace; its kernel side (host=) is in that
                # namespace too, so wrk runs there, pinned to the other core.
                cmd += ["--iface", f"tap:{self.tap},ip=10.95.0.2/24,host=10.95.0.1/24"]
                host = "10.95.0.2"
                client_ns = self.ns_srv
        else:
            cmd += ["--kernel" if loop == "asyncio" else "--uvloop", "--host", "10.94.0.2"]
            host = "10.94.0.2"
        srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _wait_line(srv, 20, f"{loop} server ({self.nic})")
            c0 = _proc_cpu(srv.pid)
            k0 = _cpu_busy(args.client_cpu)
            if ours:
                load = self._our_load_ns(f"http://{host}:{port}{path}", conns, scenario, tag)
            else:
                load = self._wrk(f"http://{host}:{port}{path}", conns, scenario, ns=client_ns)
            c1 = _proc_cpu(srv.pid)
            k1 = _cpu_busy(args.client_cpu)
        finally:
            _stop(srv)
        if srv.returncode != 0:
            raise BenchError(f"{loop} server ({self.nic}) failed: {srv.stderr.read().decode(errors='replace')[-1500:]}")
        cpu_per = (c1 - c0) * 1e6 / load["requests"] if load["requests"] and c0 is not None and c1 is not None else None
        return {
            "loop": loop, "scenario": scenario, "workers": 1,
            "client": f"{'aiorusty-load' if ours else 'wrk'}/{self.nic}",
            "connections": conns, "requests": load["requests"], "rps": load["requests_per_s"],
            "goodput_gbps": None, "wire_gbps": None, "p50_us": load["latency_us"]["p50"],
            "p99_us": load["latency_us"]["p99"], "errors": load.get("errors", {}),
            "server_requests": None, "server_cpu_s": None if cpu_per is None else c1 - c0,
            "server_cpu_us_per_req": cpu_per, "server_core_busy_s": None, "wall_s": None,
            # The client's core (its kernel receive work too: RPS puts it there), per response.
            "client_core_us_per_req": _core_us_per_req(k0, k1, load["requests"]),
            "server_cores": str(args.server_cpu), "client_cores": str(args.client_cpu),
        }

    def _our_load_ns(self, url, conns, scenario, tag):
        """`aiorusty load` in wrk's namespace on a stack of its own (AF_PACKET on wrk's veth,
        address 10.94.0.5): the user-space generator against the same server as wrk."""
        ljson = os.path.join(self.tmp, f"{tag}-ourload.json")
        cmd = ["ip", "netns", "exec", self.ns_cli] + self.py + [
            "load", url, "-q", "-d", str(self.args.duration), "-c", str(conns), "--workers", "1",
            "--cpus", str(self.args.client_cpu), "--json", ljson,
            "--iface", f"afpacket:{self.veth_cli},ip=10.94.0.5/24"] + SCENARIOS[scenario][1]
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=self.args.duration + 90)
        if res.returncode != 0 or not os.path.exists(ljson):
            raise BenchError(f"aiorusty load over afpacket failed: {res.stderr.decode(errors='replace')[-1500:]}")
        with open(ljson) as f:
            return json.load(f)

    def _wrk(self, url, conns, scenario, ns=None):
        wrk = shutil.which("wrk")
        if wrk is None:
            raise BenchError("wrk is not installed")
        cmd = ["taskset", "-c", str(self.args.client_cpu), wrk, "-t1", f"-c{conns}", f"-d{self.args.duration:g}s",
               "--latency", url]
        if scenario == "newconn":
            cmd[4:4] = ["-H", "Connection: close"]
        if ns:
            cmd = ["ip", "netns", "exec", ns] + cmd
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=self.args.duration + 30).stdout.decode()
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        n = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
        errs = {}
        sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if sock:
            errs = {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), sock.groups()) if int(v)}
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if non2xx:
            errs["bad_status"] = int(non2xx.group(1))

        def lat(p):
            mm = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
            if not mm:
                return None
            return float(mm.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[mm.group(2)]
        return {"requests": int(n.group(1)) if n else 0, "requests_per_s": float(m.group(1)) if m else 0.0,
                "goodput_gbps": 0.0, "wire_gbps": None,
                "latency_us": {"p50": lat(50), "p99": lat(99)}, "errors": errs, "raw": out}


def _median(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarize(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["loop"], r["workers"], r["client"]), []).append(r)
    out = []
    for (scen, loop, w, client), rs in groups.items():
        out.append({
            "scenario": scen, "loop": loop, "workers": w, "client": client, "runs": len(rs),
            "rps": _median(rs, "rps"), "rps_runs": [round(r["rps"]) for r in rs],
            "server_cpu_us_per_req": _median(rs, "server_cpu_us_per_req"),
            "client_core_us_per_req": _median(rs, "client_core_us_per_req"),
            "goodput_gbps": _median(rs, "goodput_gbps"), "wire_gbps": _median(rs, "wire_gbps"),
            "p50_us": _median(rs, "p50_us"), "p99_us": _median(rs, "p99_us"),
            "errors": sum(sum(r["errors"].values()) for r in rs),
            "xcore_gbps": _median(rs, "xcore_gbps"),
        })
    # Ratios against uvloop measured with the same client on the same path in the same run;
    # wrk on the kernel path compares with our generator on it (client "aiorusty-load").
    base = {(s["scenario"], s["client"]): s for s in out if s["loop"] == "uvloop" and s["workers"] == 1}
    for s in out:
        b = base.get((s["scenario"], s["client"] if s["client"] != "wrk" else "aiorusty-load"))
        if b and b["rps"]:
            s["rps_vs_uvloop"] = s["rps"] / b["rps"]
            xs = (s.get("xcore_gbps"), b.get("xcore_gbps"))
            # The two medians were measured at copy ceilings far apart: the ratio is partly
            # the machine's (see xcore_gbps); flagged in the table.
            s["mixed_ceiling"] = None not in xs and min(xs) > 0 and max(xs) / min(xs) > MIXED_CEILING
        if b and b.get("server_cpu_us_per_req") and s.get("server_cpu_us_per_req"):
            s["cpu_vs_uvloop"] = s["server_cpu_us_per_req"] / b["server_cpu_us_per_req"]
    return out


def _ratio(s, key):
    return _fmt(s.get(key), ".2f") + ("*" if s.get("mixed_ceiling") and s.get(key) is not None else "")


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(summary):
    head = ["scenario", "loop", "workers", "client", "req/s", "vs uvloop", "server us/req", "cpu vs uvloop",
            "client us/req", "Gbps (goodput)", "p50 us", "p99 us", "errors", "runs", "xcore Gbps"]
    lines = [head]
    for s in sorted(summary, key=lambda s: (s["scenario"], s["client"], s["workers"], s["loop"])):
        lines.append([s["scenario"], s["loop"], str(s["workers"]), s["client"], _fmt(s["rps"], ",.0f"),
                      _ratio(s, "rps_vs_uvloop"), _fmt(s["server_cpu_us_per_req"], ".1f"),
                      _ratio(s, "cpu_vs_uvloop"), _fmt(s.get("client_core_us_per_req"), ".1f"),
                      _fmt(s["goodput_gbps"], ".3f"),
                      _fmt(s["p50_us"], ".0f"), _fmt(s["p99_us"], ".0f"), str(s["errors"]), str(s["runs"]),
                      _fmt(s.get("xcore_gbps"), ".0f")])
    return lines


def text_table(lines):
    widths = [max(len(r[i]) for r in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.rjust(w) if i >= 4 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in lines)


def md_table(lines):
    out = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
    out += ["| " + " | ".join(r) + " |" for r in lines[1:]]
    return "\n".join(out)


def charts(summary, outdir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    files = []
    main = [s for s in summary if s["workers"] == 1 and s["client"] == "aiorusty-load"]
    scen = sorted({s["scenario"] for s in main})
    loops_ = [lp for lp in ("asyncio", "uvloop", "aiorusty") if any(s["loop"] == lp for s in main)]
    # Scenarios differ by orders of magnitude: bars are relative to uvloop (= 1) when it ran,
    # each labelled with its absolute value.
    norm = "uvloop" in loops_
    for key, label, fname in (("rps", "requests/s", "rps.png"),
                              ("server_cpu_us_per_req", "server CPU us per request", "cpu.png")):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        width = 0.8 / max(1, len(loops_))
        for j, lp in enumerate(loops_):
            vals, rel = [], []
            for sc in scen:
                v = next((s[key] or 0 for s in main if s["scenario"] == sc and s["loop"] == lp), 0)
                b = next((s[key] or 0 for s in main if s["scenario"] == sc and s["loop"] == "uvloop"), 0)
                vals.append(v)
                rel.append(v / b if norm and b else v)
            xs = [i + j * width for i in range(len(scen))]
            ax.bar(xs, rel, width, label=lp)
            for x, r, v in zip(xs, rel, vals):
                ax.annotate(f"{v:,.0f}" if v >= 100 else f"{v:.1f}", (x, r), ha="center", va="bottom", fontsize=7)
        if norm:
            ax.axhline(1.0, color="gray", linewidth=0.8)
            label = f"{label} relative to uvloop (median)"
        ax.set_xticks([i + width * (len(loops_) - 1) / 2 for i in range(len(scen))])
        ax.set_xticklabels(scen)
        ax.set_ylabel("relative to uvloop (= 1)" if norm else label)
        ax.legend()
        ax.set_title(f"aiorusty bench: {label}")
        fig.tight_layout()
        path = os.path.join(outdir, fname)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    scale = sorted((s for s in summary if s["loop"] == "aiorusty" and s["scenario"] == "small"
                    and s["client"] == "aiorusty-load"), key=lambda s: s["workers"])
    if len({s["workers"] for s in scale}) > 1:
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot([s["workers"] for s in scale], [s["rps"] for s in scale], marker="o")
        ax.set_xlabel("workers (server and generator each)")
        ax.set_ylabel("requests/s")
        ax.set_title("aiorusty workers scaling (small, shm)")
        fig.tight_layout()
        path = os.path.join(outdir, "scaling.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    return files


def run(args):
    if args.quick:
        args.duration = min(args.duration, 2.0)
        args.rounds = 1
    loops_ = [x.strip() for x in args.loops.split(",") if x.strip()]
    scenarios = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    for s in scenarios:
        if s not in SCENARIOS:
            raise SystemExit(f"aiorusty bench: unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
    if "uvloop" in loops_:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("aiorusty bench: uvloop is not installed; skipping it (pip install uvloop)", file=sys.stderr)
            loops_.remove("uvloop")
    ncores = len(os.sched_getaffinity(0))
    if ncores < 2:
        print("aiorusty bench: only one core available: server and generator share it", file=sys.stderr)
        args.client_cpu = args.server_cpu
    workers = [int(w) for w in args.workers.split(",") if w.strip()] if args.workers else []
    date = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    outdir = args.out or os.path.join("results", f"bench-{date}")
    os.makedirs(outdir, exist_ok=True)
    runner = Runner(args, outdir)
    use_wrk = getattr(args, "wrk", False) or (shutil.which("wrk") is not None and "uvloop" in loops_)
    rows, failures = [], []
    t_start = time.monotonic()
    nic_ready = False
    # A bound on the whole bench: runs planned past it are skipped and listed.
    hard_end = t_start + ((50 + (45 if args.nic != "none" else 0)) if args.quick else max(600, args.rounds * 40 * (args.duration + 3)))
    if args.nic != "none":
        if os.geteuid() != 0:
            raise SystemExit(f"aiorusty bench: --nic {args.nic} needs root (namespaces, veth, tap)")
        if shutil.which("wrk") is None:
            raise SystemExit("aiorusty bench: --nic needs wrk as the independent client")
        try:
            runner.nic_setup(args.nic)
            nic_ready = True
        except BenchError as e:
            runner.nic_teardown()
            failures.append({"loop": "-", "scenario": "-", "workers": 1, "client": args.nic, "error": str(e)})
    print(f"aiorusty bench: {len(loops_)} loops x {len(scenarios)} scenarios x {args.rounds} round(s), "
          f"{args.duration:g} s per run, server on core {args.server_cpu}, generator on core {args.client_cpu}; "
          f"results in {outdir}", file=sys.stderr)
    try:
        _run_plan(args, runner, rows, failures, loops_, scenarios, workers, use_wrk, nic_ready, hard_end)
    finally:
        if nic_ready:
            runner.nic_teardown()
    return _finish(args, rows, failures, loops_, scenarios, outdir, t_start)


def _run_plan(args, runner, rows, failures, loops_, scenarios, workers, use_wrk, nic_ready, hard_end):
    for rnd in range(args.rounds):
        plan = [(lp, sc, 1, "aiorusty-load") for sc in scenarios for lp in loops_]
        if use_wrk and "small" in scenarios:
            plan.append(("uvloop", "small", 1, "wrk"))
        plan += [("aiorusty", "small", w, "aiorusty-load") for w in workers if w != 1 or "aiorusty" not in loops_]
        if nic_ready:
            plan += [(lp, sc, 1, "nic") for sc in scenarios if sc in ("small", "newconn", "bulk") for lp in loops_]
            if "small" in scenarios and args.nic == "afpacket":
                # aiorusty load vs wrk, one core each, against the same server: uvloop's, and
                # aiorusty's, which is fast enough that the generator is the bottleneck.
                plan += [(lp, "small", 1, "nic-ours") for lp in ("uvloop", "aiorusty") if lp in loops_]
        for lp, sc, w, client in plan:
            if time.monotonic() > hard_end:
                failures.append({"loop": lp, "scenario": sc, "workers": w, "client": client,
                                 "error": "skipped: the bench ran past its time budget"})
                continue
            # The cores' copy ceiling right before the run: it explains a bulk figure that
            # jumps between rounds (the machine changed speed), see xcore_gbps.
            xcore = xcore_gbps(args.server_cpu, args.client_cpu)
            try:
                if client == "nic":
                    row = runner.run_nic(lp, sc)
                elif client == "nic-ours":
                    row = runner.run_nic(lp, sc, ours=True)
                else:
                    row = runner.run_pair(lp, sc, w, client)
            except (BenchError, subprocess.TimeoutExpired) as e:
                failures.append({"loop": lp, "scenario": sc, "workers": w, "client": client, "error": str(e)})
                print(f"  FAILED {lp} {sc} w{w} {client}: {str(e)[:300]}", file=sys.stderr)
                continue
            row["round"] = rnd
            row["xcore_gbps"] = xcore
            rows.append(row)
            print(f"  round {rnd + 1} {sc:8} {lp:8} w{w} {client:13} {row['rps']:>10,.0f} req/s  "
                  f"server {_fmt(row['server_cpu_us_per_req'], '.1f')} us/req  "
                  f"(cores copy {_fmt(xcore, '.0f')} Gbps)", file=sys.stderr)


def _finish(args, rows, failures, loops_, scenarios, outdir, t_start):
    summary = summarize(rows)
    lines = table(summary)
    text = text_table(lines)
    mixed = any(r.get("mixed_ceiling") for r in summary)
    print(text + ("\n" + MIXED_NOTE if mixed else ""))
    info = machine_info()
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": info,
        "command": "aiorusty " + " ".join(sys.argv[1:]) if len(sys.argv) > 1 else "aiorusty bench",
        "loops": loops_, "scenarios": {s: SCENARIOS[s][3] for s in scenarios},
        "duration_s": args.duration, "rounds": args.rounds, "connections": args.connections,
        "pinning": {"server_core": args.server_cpu, "client_core": args.client_cpu},
        "aiorusty_busy_poll_us": args.busy_poll_us if args.busy_poll_us is not None else "default (100)",
        "path": {"aiorusty": "user-space stacks in two processes over the shm link (no kernel)",
                 "asyncio": "kernel TCP over 127.0.0.1, generator on uvloop",
                 "uvloop": "kernel TCP over 127.0.0.1, generator on uvloop",
                 "wrk": "wrk -t1 against the uvloop server on 127.0.0.1",
                 "wrk/afpacket": "root: server in a namespace on a veth (aiorusty via AF_PACKET, kernel loops on "
                                 "the kernel address), wrk -t1 in another namespace, RPS per side",
                 "wrk/tap": "root: aiorusty on a tap (kernel side in its namespace, wrk there); kernel loops as "
                            "for afpacket"},
        "nic": args.nic,
        "elapsed_s": time.monotonic() - t_start,
    }
    try:
        import uvloop
        meta["uvloop_version"] = uvloop.__version__
    except ImportError:
        pass
    with open(os.path.join(outdir, "bench.json"), "w") as f:
        json.dump({"meta": meta, "summary": summary, "runs": rows, "failures": failures}, f, indent=1)
    pngs = charts(summary, outdir) if args.charts else []
    with open(os.path.join(outdir, "REPORT.md"), "w") as f:
        f.write(f"# aiorusty bench, {meta['date']}\n\n")
        f.write(f"Machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}, Python {info['python']}. "
                f"Server pinned to core {args.server_cpu}, generator to core {args.client_cpu}. "
                f"{args.rounds} round(s) of {args.duration:g} s runs, loops alternated; medians.\n\n")
        f.write("Paths: aiorusty = server and generator each on their own user-space stack, two processes "
                "over the shm link; asyncio/uvloop = kernel TCP on 127.0.0.1 with the same generator code "
                "on uvloop. Server CPU = the server process's user+system time from its first request to "
                "its stop, per request answered. xcore Gbps = what two threads on the server's and the "
                "generator's cores copy through an shm-shaped ring just before each run (median): the "
                "ceiling of an shm bulk run; on a VM it can change over minutes, and bulk figures (and "
                "the kernel loops') move with it.\n\n")
        f.write(md_table(lines) + "\n\n" + (MIXED_NOTE + "\n\n" if mixed else ""))
        for s in SCENARIOS:
            if s in scenarios:
                f.write(f"- {s}: {SCENARIOS[s][3]}\n")
        if failures:
            f.write("\nFailed runs:\n\n" + "\n".join(f"- {x['loop']} {x['scenario']} w{x['workers']}: "
                                                       f"{x['error'][:200]}" for x in failures) + "\n")
        for p in pngs:
            f.write(f"\n![{os.path.basename(p)}]({os.path.basename(p)})\n")
    print(f"\nresults: {outdir}/ (bench.json, REPORT.md{', ' + ', '.join(os.path.basename(p) for p in pngs) if pngs else ''})"
          f" in {meta['elapsed_s']:.0f} s", file=sys.stderr)
    return 0 if rows and not failures else 1
