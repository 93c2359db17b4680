"""Frames per second through the tap and AF_PACKET drivers, against bare C.

For each device (tap, afpacket), frame size (64, 1514 bytes without FCS) and
direction, one core does the work (this process, pinned to core 0):

  rx  a C flooder (bench/bare/flood.c) on the Linux side, in a namespace this
      script creates, pinned to core 1, sends a bounded flood; after a warm-up
      the receiver counts frames for a fixed time. Driver: the C loop
      rusty_dev_bench_rx over the aiorusty device. Bare: bench/bare/tap_rw.c
      (read() until EAGAIN) or afpacket_rw.c (TPACKET_V3 ring walk).
  tx  transmit a fixed number of frames as fast as the device takes them.
      Driver: rusty_dev_bench_tx. Bare: write() per frame (tap) or TX ring
      slots with one send() per 64 frames (afpacket).

Topology: tap - a persistent tap made in the namespace, so the kernel side
is there and both the driver and the bare program attach to it; afpacket - a
veth pair, our end in the root namespace (no address), the peer in the
namespace. On a veth the receive work (including the copy into the RX ring)
runs in the sender's softirq on the sender's core, so AF_PACKET rx mostly
measures whether the ring walker keeps up with the flood ("offered").

Prints a table and writes bench/results/nic_frames.json. Needs root and gcc.
Run: python bench/nic_frames.py [--measure 0.5] [--reps 4] [--devices tap,afpacket]
"""

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from _netns import in_netns, netns, sh, unique, veth_pair  # noqa: E402
from aiorusty._rusty import ffi, lib  # noqa: E402

BARE = os.path.join(ROOT, "bench", "bare")
RESULTS = os.path.join(ROOT, "bench", "results", "nic_frames.json")
SIZES = (64, 1514)
TX_COUNT = {64: 300_000, 1514: 150_000}
FLOOD_COUNT = 5_000_000


def build_bare(outdir):
    exe = {}
    for name in ("flood", "tap_rw", "afpacket_rw"):
        exe[name] = os.path.join(outdir, name)
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-o", exe[name], os.path.join(BARE, f"{name}.c")],
                       check=True)
    return exe


def parse_counts(text):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", text)}


def open_dev(driver, name, ns=None):
    cfg = ffi.new("struct rusty_dev_config *")  # attach only: no CREATE; offload on
    out = ffi.new("struct rusty_dev **")
    opener = lib.rusty_tap_open if driver == "tap" else lib.rusty_afpacket_open
    with (in_netns(ns) if ns else contextlib.nullcontext()):
        ret = opener(name.encode(), cfg, out)
    if ret < 0:
        raise OSError(-ret, f"{driver} {name}: {os.strerror(-ret)}")
    return out[0]


class Flood:
    """The bounded flood from the Linux side, pinned to the other core, lasting one rx run."""

    def __init__(self, exe, ns, ifname, size, cpu, seconds):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, exe, ifname, "02:52:00:00:00:02", str(size), str(FLOOD_COUNT),
             str(seconds), str(cpu)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self):
        out, err = self.proc.communicate(timeout=30)
        if self.proc.returncode != 0:
            raise RuntimeError(f"flood failed: {err.strip()}")
        c = parse_counts(out)
        return {"offered_fps": c["sent"] / c["seconds"], "refused_batches": int(c["refused"])}


def driver_rx(dev, warm, measure):
    import select
    fd = lib.rusty_dev_fd(dev, 0)
    if not select.select([fd], [], [], 5)[0]:
        raise RuntimeError("driver rx: no traffic")
    lib.rusty_dev_bench_rx(dev, 0, 1 << 62, int(warm * 1e6), ffi.NULL)
    t0 = time.perf_counter()
    n = lib.rusty_dev_bench_rx(dev, 0, 1 << 62, int(measure * 1e6), ffi.NULL)
    return n / (time.perf_counter() - t0)


def driver_tx(dev, size):
    frame = bytes.fromhex("020000000002" "020000000001" "0800") + bytes(size - 14)
    count = TX_COUNT[size]
    t0 = time.perf_counter()
    n = lib.rusty_dev_bench_tx(dev, 0, frame, len(frame), count)
    el = time.perf_counter() - t0
    if n != count:
        print(f"  (driver tx sent {n} of {count})", file=sys.stderr)
    return n / el


def bare_cmd(exe, ns, *args):
    argv = [exe] + [str(a) for a in args]
    return ["ip", "netns", "exec", ns] + argv if ns else argv


class Bench:
    """One device (tap or afpacket) in its namespace; runs the driver and the bare program on it."""

    def __init__(self, kind, exe, args, peer_cpu, ns):
        self.kind, self.exe, self.args, self.peer_cpu, self.ns = kind, exe, args, peer_cpu, ns
        self.bare = exe["tap_rw" if kind == "tap" else "afpacket_rw"]
        self.flood_seconds = args.warm + args.measure + 0.3

    def rx(self, impl, size):
        a = self.args
        flood_args = (self.exe["flood"], self.ns, self.flood_if, size, self.peer_cpu, self.flood_seconds)
        if impl == "driver":
            dev = open_dev(self.kind, self.ifname, self.dev_ns)
            try:
                flood = Flood(*flood_args)
                fps = driver_rx(dev, a.warm, a.measure)
                st = ffi.new("struct rusty_dev_stats *")
                lib.rusty_dev_get_stats(dev, st)
                extra = {"rx_dropped": st.rx_dropped}
            finally:
                lib.rusty_dev_close(dev)
        else:
            proc = subprocess.Popen(bare_cmd(self.bare, self.dev_ns, "rx", self.ifname, a.warm, a.measure),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"bare rx: {proc.stderr.read().strip()}")
            flood = Flood(*flood_args)
            out, err = proc.communicate(timeout=30)
            if proc.returncode != 0:
                raise RuntimeError(f"bare rx failed: {err.strip()}")
            c = parse_counts(out)
            fps, extra = c["frames"] / c["seconds"], {}
        return {"fps": round(fps), **{k: round(v) for k, v in flood.result().items()}, **extra}

    def tx(self, impl, size):
        if impl == "driver":
            dev = open_dev(self.kind, self.ifname, self.dev_ns)
            try:
                return {"fps": round(driver_tx(dev, size))}
            finally:
                lib.rusty_dev_close(dev)
        r = subprocess.run(bare_cmd(self.bare, self.dev_ns, "tx", self.ifname, size, TX_COUNT[size]),
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"bare tx failed: {r.stderr.strip()}")
        c = parse_counts(r.stdout)
        return {"fps": round(c["frames"] / c["seconds"])}

    def run(self, rows):
        ns = self.ns
        if self.kind == "tap":
            self.ifname = self.flood_if = unique("rbtap")
            sh("ip", "tuntap", "add", "dev", self.ifname, "mode", "tap", ns=ns)
            link, self.dev_ns = contextlib.nullcontext(), ns
        else:
            self.ifname, self.flood_if = unique("rbva"), unique("rbvb")
            link, self.dev_ns = veth_pair(self.ifname, self.flood_if, ns_b=ns), None
        with link:
            for name, where in ((self.ifname, self.dev_ns), (self.flood_if, ns)):
                sh("sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1", ns=where, check=False)
                sh("ip", "link", "set", name, "up", ns=where)
            for size in SIZES:
                row = {"device": self.kind, "frame_bytes": size}
                for direction in ("rx", "tx"):
                    samples = {"driver": [], "bare": []}
                    for _ in range(self.args.reps):
                        for impl in ("driver", "bare"):   # interleaved, so drift hits both
                            samples[impl].append(getattr(self, direction)(impl, size))
                            time.sleep(0.05)
                    best = {impl: max(s, key=lambda r: r["fps"]) for impl, s in samples.items()}
                    row[f"{direction}_driver_fps"] = best["driver"]["fps"]
                    row[f"{direction}_bare_fps"] = best["bare"]["fps"]
                    row[f"{direction}_ratio"] = round(best["driver"]["fps"] / best["bare"]["fps"], 3)
                    row[f"{direction}_samples"] = samples
                    if direction == "rx":
                        row["rx_offered_fps"] = max(r["offered_fps"] for s in samples.values() for r in s)
                rows.append(row)
                print_row(row)
        if self.kind == "tap":
            sh("ip", "tuntap", "del", "dev", self.ifname, "mode", "tap", ns=ns, check=False)


HEADER = f"{'device':9} {'bytes':>5} | {'rx driver':>10} {'rx bare':>10} {'ratio':>6} {'offered':>10} | " \
         f"{'tx driver':>10} {'tx bare':>10} {'ratio':>6}"


def print_row(r):
    print(f"{r['device']:9} {r['frame_bytes']:>5} | {r['rx_driver_fps']:>10,} {r['rx_bare_fps']:>10,} "
          f"{r['rx_ratio']:>6} {r['rx_offered_fps']:>10,} | {r['tx_driver_fps']:>10,} {r['tx_bare_fps']:>10,} "
          f"{r['tx_ratio']:>6}", flush=True)


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", type=float, default=0.5, help="seconds counted per rx run (default 0.5)")
    ap.add_argument("--warm", type=float, default=0.2, help="rx warm-up seconds (default 0.2)")
    ap.add_argument("--reps", type=int, default=4, help="runs per figure, best kept (default 4)")
    ap.add_argument("--devices", default="tap,afpacket", help="comma-separated (default tap,afpacket)")
    ap.add_argument("--out", default=RESULTS, help=f"JSON output (default {os.path.relpath(RESULTS, ROOT)})")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("nic_frames: needs root (creates a namespace, a tap and a veth pair)")
    if not shutil.which("gcc"):
        sys.exit("nic_frames: needs gcc to build bench/bare/*.c")
    cpus = sorted(os.sched_getaffinity(0))
    own_cpu, peer_cpu = cpus[0], cpus[1] if len(cpus) > 1 else cpus[0]
    os.sched_setaffinity(0, {own_cpu})
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_bare(tmp)
        print(f"frames/s, receiver/transmitter pinned to cpu {own_cpu}, flood on cpu {peer_cpu}")
        print(HEADER)
        for kind in args.devices.split(","):
            with netns(unique("rbn")) as ns:
                Bench(kind, exe, args, peer_cpu, ns).run(rows)
    report = {
        "benchmark": "nic_frames",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": " ".join(platform.uname()),
        "cpu_model": cpu_model(),
        "cpus_online": os.cpu_count(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "pinning": {"measured_side_cpu": own_cpu, "flood_cpu": peer_cpu},
        "method": {
            "rx": f"bounded flood ({FLOOD_COUNT} frames or warm-up + measure + 0.3 s) from the Linux side; "
                  f"{args.warm} s warm-up, then frames counted for {args.measure} s; best of {args.reps}",
            "tx": f"time to transmit {TX_COUNT} frames; best of {args.reps}",
            "driver": "rusty_dev_bench_rx / rusty_dev_bench_tx (bursts of 64, pool buffers)",
            "bare": "bench/bare/tap_rw.c (read/write) and afpacket_rw.c (V3 ring walk + copy, TX ring)",
            "offered": "the flooder's own send rate over its run (best run); refused_batches > 0 means the "
                       "tap's queue was full, i.e. the receiver, not the flooder, set the pace",
        },
        "results": rows,
        "seconds": round(time.time() - started, 1),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {os.path.relpath(args.out)} ({report['seconds']} s)")


if __name__ == "__main__":
    main()
