"""Frames per second through the tap and AF_PACKET drivers, against bare C.

For each device (tap, afpacket), frame size (64, 1514 bytes without FCS) and
direction, one core does the measured work (this process, or the bare
program, pinned to core 0):

  rx  a C flooder (bench/bare/flood.c) on the Linux side, in a namespace this
      script creates, pinned to core 1, queues exactly N frames: into the tap's
      queue (its txqueuelen is raised to hold them) or, over a veth, into the
      AF_PACKET RX ring (128 MiB). The receiver then drains them as fast as it
      can, so the figure is the receiver's own rate, whatever the flooder's
      (on a shared 2-core machine the flooder's rate swings by 3x).
      Driver: the C loop rusty_dev_bench_rx over the aiorusty device. Bare:
      bench/bare/tap_rw.c (read() until EAGAIN) or afpacket_rw.c (TPACKET_V3
      ring walk, copying each frame out as the driver does).
  tx  transmit N frames as fast as the device takes them. The frames go to a
      MAC nobody has, so the Linux side drops them at the IP layer: this is the
      write path, not a socket delivery (that runs on the same core: a tap
      write() and a veth transmit process the frame in the caller's context).
      Driver: rusty_dev_bench_tx. Bare: write() per frame (tap) or TX ring
      slots with one send() per 64 frames (afpacket).

Each figure is the best of --reps runs, driver and bare interleaved, as frames
per wall second and per CPU-second of the measured side (user + system time,
which preemption by other work does not dilute). Topology: tap - a persistent
tap made in the namespace (the kernel side is there; driver and bare program
attach to it in turn); afpacket - a veth pair, our end in the root namespace
with no address, the peer in the namespace.

Prints a table and writes bench/results/nic_frames.json. Needs root and gcc.
Run: python bench/nic_frames.py [--reps 4] [--devices tap,afpacket]
"""

import argparse
import contextlib
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
from _machine import cpu_model, write_json  # noqa: E402

BARE = os.path.join(ROOT, "bench", "bare")
RESULTS = os.path.join(ROOT, "bench", "results", "nic_frames.json")
SIZES = (64, 1514)
TX_COUNT = {64: 300_000, 1514: 150_000}
FLOOD_SECONDS = 10                      # a bound; floods stop by count
# Frames queued before a drain: the tap's queue is made this long, the RX ring
# holds AFP_RING_MB (a 64-byte frame takes 160 bytes of it, 1514 takes 1600).
PREFILL = {"tap": {64: 200_000, 1514: 50_000}, "afpacket": {64: 400_000, 1514: 60_000}}
AFP_RING_MB = 128
DRAIN_BUDGET_US = 3_000_000
LIVE_COUNT = 300_000                    # afpacket: received while the flood runs, default ring
LIVE_BUDGET_US = 4_000_000


def build_bare(outdir):
    exe = {}
    for name in ("flood", "tap_rw", "afpacket_rw"):
        exe[name] = os.path.join(outdir, name)
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-o", exe[name], os.path.join(BARE, f"{name}.c")],
                       check=True)
    return exe


def parse_counts(text):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", text)}


def open_dev(driver, name, ns=None, ring_mb=0):
    cfg = ffi.new("struct rusty_dev_config *")  # attach only: no CREATE; offload on
    cfg.ring_frames = ring_mb * 1024 * 1024 // 2048
    out = ffi.new("struct rusty_dev **")
    opener = lib.rusty_tap_open if driver == "tap" else lib.rusty_afpacket_open
    with (in_netns(ns) if ns else contextlib.nullcontext()):
        ret = opener(name.encode(), cfg, out)
    if ret < 0:
        raise OSError(-ret, f"{driver} {name}: {os.strerror(-ret)}")
    return out[0]


class Flood:
    """A flood of exactly `count` frames from the Linux side, pinned to the other core."""

    def __init__(self, exe, ns, ifname, size, cpu, count):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, exe, ifname, "02:52:00:00:00:02", str(size), str(count),
             str(FLOOD_SECONDS), str(cpu)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self):
        out, err = self.proc.communicate(timeout=FLOOD_SECONDS + 10)
        if self.proc.returncode != 0:
            raise RuntimeError(f"flood failed: {err.strip()}")
        c = parse_counts(out)
        return {"flood_fps": round(c["sent"] / c["seconds"]), "flood_sent": int(c["sent"])}


def driver_rx(dev, count, budget_us=None):
    t0, c0 = time.perf_counter(), time.thread_time()     # the C loop runs in this thread
    n = lib.rusty_dev_bench_rx(dev, 0, count, budget_us or DRAIN_BUDGET_US, ffi.NULL)
    return n, time.perf_counter() - t0, time.thread_time() - c0


def driver_tx(dev, size):
    frame = bytes.fromhex("020000000002" "020000000001" "0800") + bytes(size - 14)
    count = TX_COUNT[size]
    t0, c0 = time.perf_counter(), time.thread_time()
    n = lib.rusty_dev_bench_tx(dev, 0, frame, len(frame), count)
    wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
    if n != count:
        print(f"  (driver tx sent {n} of {count})", file=sys.stderr)
    return n, wall, cpu


def rates(frames, wall, cpu):
    return {"fps": round(frames / wall), "fps_per_cpu_s": round(frames / cpu) if cpu > 0 else None}


def bare_cmd(exe, ns, *args):
    argv = [exe] + [str(a) for a in args]
    return ["ip", "netns", "exec", ns] + argv if ns else argv


class Bench:
    """One device (tap or afpacket) in its namespace; runs the driver and the bare program on it."""

    def __init__(self, kind, exe, args, peer_cpu, ns):
        self.kind, self.exe, self.args, self.peer_cpu, self.ns = kind, exe, args, peer_cpu, ns
        self.bare = exe["tap_rw" if kind == "tap" else "afpacket_rw"]

    def rx(self, impl, size, live=False):
        """Fill the kernel's queue (tap) or the RX ring (afpacket) with `count` frames, then drain it.

        live (afpacket): receive while the flood runs, with the driver's default 8 MiB ring.
        """
        count = LIVE_COUNT if live else PREFILL[self.kind][size]
        ring_mb = (8 if live else AFP_RING_MB) if self.kind == "afpacket" else 0
        flood_args = (self.exe["flood"], self.ns, self.flood_if, size, self.peer_cpu, count)
        if impl == "driver":
            dev = open_dev(self.kind, self.ifname, self.dev_ns, ring_mb)
            try:
                if live:
                    flood = Flood(*flood_args)
                    n, wall, cpu = driver_rx(dev, count, budget_us=LIVE_BUDGET_US)
                    fill = flood.result()
                    st = ffi.new("struct rusty_dev_stats *")
                    lib.rusty_dev_get_stats(dev, st)
                    return {"received": n, "kept_up": round(n / count, 4), "rx_dropped": st.rx_dropped, **fill}
                fill = Flood(*flood_args).result()
                time.sleep(0.02)                # the last TPACKET_V3 block retires after 1 ms
                n, wall, cpu = driver_rx(dev, count)
            finally:
                lib.rusty_dev_close(dev)
        else:
            args = [count, ring_mb] if self.kind == "afpacket" else [count]
            proc = subprocess.Popen(bare_cmd(self.bare, self.dev_ns, "rx", self.ifname, *args),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"bare rx: {proc.stderr.read().strip()}")
            if live:
                proc.stdin.write("go\n")
                proc.stdin.flush()
            fill = Flood(*flood_args).result()
            time.sleep(0.02)
            out, err = proc.communicate(None if live else "go\n", timeout=30)
            if proc.returncode != 0:
                raise RuntimeError(f"bare rx failed: {err.strip()}")
            c = parse_counts(out)
            n, wall, cpu = int(c["frames"]), c["seconds"], c["cpu"]
            if live:
                return {"received": n, "kept_up": round(n / count, 4), **fill}
        if n != count:
            print(f"  ({impl} {self.kind} rx got {n} of {count} frames: sample dropped)", file=sys.stderr)
            return {"fps": 0, "fps_per_cpu_s": 0, "frames": n, **fill}
        return {**rates(n, wall, cpu), "frames": n, **fill}

    def tx(self, impl, size):
        if impl == "driver":
            dev = open_dev(self.kind, self.ifname, self.dev_ns)
            try:
                return rates(*driver_tx(dev, size))
            finally:
                lib.rusty_dev_close(dev)
        r = subprocess.run(bare_cmd(self.bare, self.dev_ns, "tx", self.ifname, size, TX_COUNT[size]),
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"bare tx failed: {r.stderr.strip()}")
        c = parse_counts(r.stdout)
        return rates(c["frames"], c["seconds"], c["cpu"])

    def run(self, rows, live_rows):
        ns = self.ns
        if self.kind == "tap":
            self.ifname = self.flood_if = unique("rbtap")
            sh("ip", "tuntap", "add", "dev", self.ifname, "mode", "tap", ns=ns)
            qlen = max(PREFILL["tap"].values()) + 1000
            sh("ip", "link", "set", self.ifname, "txqueuelen", qlen, ns=ns)
            link, self.dev_ns = contextlib.nullcontext(), ns
        else:
            self.ifname, self.flood_if = unique("rbva"), unique("rbvb")
            link, self.dev_ns = veth_pair(self.ifname, self.flood_if, ns_b=ns), None
        with link:
            for name, where in ((self.ifname, self.dev_ns), (self.flood_if, ns)):
                sh("sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1", ns=where, check=False)
                sh("ip", "link", "set", name, "up", ns=where)
            for size in SIZES:
                for direction in ("rx", "tx"):
                    samples = {"driver": [], "bare": []}
                    for _ in range(self.args.reps):
                        for impl in ("driver", "bare"):   # interleaved, so drift hits both
                            samples[impl].append(getattr(self, direction)(impl, size))
                            time.sleep(0.05)
                    row = {"device": self.kind, "frame_bytes": size, "direction": direction}
                    for impl, runs in samples.items():
                        row[f"{impl}_fps"] = max(r["fps"] for r in runs)
                        row[f"{impl}_fps_per_cpu_s"] = max(r["fps_per_cpu_s"] or 0 for r in runs)
                    row["ratio"] = round(row["driver_fps_per_cpu_s"] / row["bare_fps_per_cpu_s"], 3) \
                        if row["bare_fps_per_cpu_s"] else None
                    row["ratio_wall"] = round(row["driver_fps"] / row["bare_fps"], 3) if row["bare_fps"] else None
                    if direction == "rx":
                        row["prefill_frames"] = PREFILL[self.kind][size]
                        row["flood_fps"] = max(r["flood_fps"] for s in samples.values() for r in s)
                    row["samples"] = samples
                    rows.append(row)
                    print_row(row)
            if self.kind == "afpacket":
                for size in SIZES:
                    live = {impl: [self.rx(impl, size, live=True) for _ in range(2)] for impl in ("driver", "bare")}
                    row = {"device": self.kind, "frame_bytes": size, "direction": "rx-live",
                           "flood_fps": max(r["flood_fps"] for s in live.values() for r in s),
                           "driver_kept_up": min(r["kept_up"] for r in live["driver"]),
                           "bare_kept_up": min(r["kept_up"] for r in live["bare"]), "samples": live}
                    rows.append(row)
                    live_rows.append(row)
        if self.kind == "tap":
            sh("ip", "tuntap", "del", "dev", self.ifname, "mode", "tap", ns=ns, check=False)


HEADER = (f"{'device':9} {'bytes':>5} {'dir':3} | {'driver f/s':>10} {'bare f/s':>10} {'ratio':>6} | "
          f"{'driver f/cpu-s':>14} {'bare f/cpu-s':>12} {'ratio':>6}")


def print_row(r):
    print(f"{r['device']:9} {r['frame_bytes']:>5} {r['direction']:3} | {r['driver_fps']:>10,} {r['bare_fps']:>10,} "
          f"{r['ratio_wall']!s:>6} | {r['driver_fps_per_cpu_s']:>14,} {r['bare_fps_per_cpu_s']:>12,} "
          f"{r['ratio']!s:>6}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    rows, live_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_bare(tmp)
        print(f"frames/s, receiver/transmitter pinned to cpu {own_cpu}, flood on cpu {peer_cpu}")
        print(HEADER)
        for kind in args.devices.split(","):
            with netns(unique("rbn")) as ns:
                Bench(kind, exe, args, peer_cpu, ns).run(rows, live_rows)
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
            "rx": f"the flooder queues {PREFILL} frames (tap queue / {AFP_RING_MB} MiB AF_PACKET ring), "
                  "then the receiver drains them; rate = frames / drain time",
            "tx": f"time to transmit {TX_COUNT} frames to a MAC nobody has (dropped at the peer's IP layer)",
            "driver": "rusty_dev_bench_rx / rusty_dev_bench_tx (bursts of 64, pool buffers)",
            "bare": "bench/bare/tap_rw.c (read/write) and afpacket_rw.c (V3 ring walk + copy, TX ring)",
            "fps_per_cpu_s": "frames per CPU-second (user + system) of the measured thread or process",
            "ratio": "driver / bare frames per CPU-second; ratio_wall: the same per wall second",
            "figures": f"best of {args.reps} runs for each of driver and bare, interleaved",
            "flood_fps": "the flooder's fill rate (context only: it does not bound the drain)",
            "rx-live": f"afpacket only: {LIVE_COUNT} frames flooded while the receiver runs with the default "
                       "8 MiB ring; kept_up = fraction received (worst of 2 runs)",
        },
        "results": rows,
        "seconds": round(time.time() - started, 1),
    }
    write_json(args.out, report)
    for r in live_rows:
        print(f"afpacket {r['frame_bytes']:>5} rx while a {r['flood_fps']:,} frames/s flood runs (default 8 MiB ring): "
              f"driver got {r['driver_kept_up']:.2%}, bare {r['bare_kept_up']:.2%} (worst of 2)")
    print("f/s: frames per wall second; f/cpu-s: frames per CPU-second of the measured side (user + system),\n"
          "which preemption by other work on a shared machine does not dilute; best of the runs of each")
    print(f"wrote {os.path.relpath(args.out)} ({report['seconds']} s)")


if __name__ == "__main__":
    main()
