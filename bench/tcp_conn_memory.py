"""Memory per idle TCP connection: what the C core holds for each established, idle one.

    python bench/tcp_conn_memory.py [--conns 10000,100000] [--json bench/results/tcp_conn_memory.json]

For each count N, a fresh child process opens two stacks on an in-process
pair link (as tests/tcp does), connects N connections from one to the other,
lets them go idle (delayed ACKs sent, no timer armed), and reads how much its
resident set (RSS) and the C heap in use (glibc mallinfo2: malloc'd plus
mmap'd bytes) grew over the same process before the connections. Each
connection is two endpoints (a control block in each stack), so the figures
per endpoint are the growth / 2N. Handles are kept in array('I'), so Python
objects add ~8 bytes per endpoint to the RSS figure and nothing to the heap one.

What an endpoint costs is its control block (sizeof(struct rusty_tcb), read
by compiling a probe against tcp.h), its 4-tuple hash bucket share, three
timer-heap slots and a socket-table slot, plus its send and receive rings,
which an idle connection does not hold (they come and go with the bytes in
them): the figures are also given without the stats' tcp_buffer_bytes (ring
bytes, both stacks; 0 when idle). The stack runs on its defaults unless
--ring sets tcp_sndbuf and tcp_rcvbuf. Never a test assertion.
"""

import argparse
import array
import ctypes
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from _machine import describe, write_json  # noqa: E402  (bench/, the script's own directory)
from _stacks import pair_stacks  # noqa: E402

CONNECTED = 17                          # RUSTY_EV_TCP_CONNECTED


def tcb_size():
    """sizeof(struct rusty_tcb) and of the socket slot, from a probe compiled against the core's headers."""
    core = os.path.join(ROOT, "aiorusty", "tcp", "_core")
    src = ('#include <stdio.h>\n#include "tcp.h"\n'
           'int main(void) { printf("%zu %zu\\n", sizeof(struct rusty_tcb), sizeof(struct rusty_sock)); return 0; }\n')
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, "probe")
        subprocess.run(["cc", "-x", "c", "-", "-o", exe, "-I", core, "-I", os.path.join(ROOT, "aiorusty", "include")],
                       input=src.encode(), check=True)
        tcb, sock = subprocess.run([exe], capture_output=True, text=True, check=True).stdout.split()
    return int(tcb), int(sock)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def heap_bytes():
    """Bytes the C heap has handed out: malloc'd (uordblks) plus mmap'd chunks (hblkhd)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Mallinfo2
    m = libc.mallinfo2()
    return m.uordblks + m.hblkhd


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(n, ring):
    """Open n idle connections between two stacks; print the measurements as JSON."""

    # tcp_mem charges open windows, not memory: lifted so no connection starts clamped.
    limit = {"tcp_mem": 1 << 40}
    bufs = dict(tcp_sndbuf=ring, tcp_rcvbuf=ring) if ring else {}
    cfg = dict(ephemeral_lo=1024, ephemeral_hi=65535, **bufs, **limit)
    sa, sb, close = pair_stacks(("10.1.0.1", "10.1.0.2"), pool=8192, ring=4096, **cfg)
    now = 0

    def tick():
        nonlocal now
        now += 100
        sa.poll(now)
        return sb.poll(now)

    sb.ping("10.1.0.1", 1, 1, now_us=now)     # ARP both ways before the SYNs
    for _ in range(5):
        tick()
    ports = [80 + i for i in range(n // 60000 + 1)]   # ephemeral ports per (peer, port) run out at 64512
    listeners = [sa.tcp_listen(None, p, backlog=2048) for p in ports]
    clients, servers = array.array("I"), array.array("I")
    rss0, heap0 = rss_bytes(), heap_bytes()
    batch = 1000
    while len(clients) < n:
        k = min(batch, n - len(clients))
        for i in range(k):
            clients.append(sb.tcp_connect(("10.1.0.1", ports[(len(clients)) % len(ports)]), now_us=now))
        connected = 0
        for _ in range(200):
            connected += sum(1 for e in tick() if e[1] == CONNECTED)
            for ls in listeners:
                while (h := sa.tcp_accept(ls)) is not None:
                    servers.append(h)
            if connected == k and len(servers) == len(clients):
                break
        else:
            raise SystemExit(f"handshakes did not complete at {len(clients)}: {sa.stats()}")
    for _ in range(3):                       # delayed ACKs go out, nothing is left armed
        now += 50_000
        sa.poll(now)
        sb.poll(now)
    rss1, heap1 = rss_bytes(), heap_bytes()
    st = [s.stats() for s in (sa, sb)]
    ring_bytes = sum(x["tcp_buffer_bytes"] for x in st)
    ep = 2 * n
    out = {
        "connections": n,
        "endpoints": ep,
        "tcp_conns": [x["tcp_conns"] for x in st],
        "timers_armed": [x["timers"] for x in st],
        "ring_bytes_per_endpoint": ring_bytes / ep,
        "rss_growth_bytes": rss1 - rss0,
        "rss_per_endpoint": (rss1 - rss0) / ep,
        "rss_per_endpoint_without_rings": (rss1 - rss0 - ring_bytes) / ep,
        "heap_growth_bytes": heap1 - heap0,
        "heap_per_endpoint": (heap1 - heap0) / ep,
        "heap_per_endpoint_without_rings": (heap1 - heap0 - ring_bytes) / ep,
    }
    close()
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", default="10000,100000", help="connection counts, comma-separated")
    ap.add_argument("--ring", type=int, default=0, help="tcp_sndbuf and tcp_rcvbuf in bytes (default: the stack's)")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "tcp_conn_memory.json"))
    ap.add_argument("--no-json", action="store_true")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.ring)
        return
    tcb, sock = tcb_size()
    print(f"sizeof(struct rusty_tcb) = {tcb} B, socket slot = {sock} B")
    rows = []
    for n in (int(x) for x in args.conns.split(",")):
        # A fresh process per count: freed memory is not given back to the OS, so
        # a second count in the same process would start from a grown heap.
        res = subprocess.run([sys.executable, __file__, "--child", str(n), "--ring", str(args.ring)],
                             capture_output=True, text=True, check=True)
        row = json.loads(res.stdout)
        rows.append(row)
        print(f"{n:>7} connections: {row['rss_per_endpoint']:7.0f} B RSS per endpoint "
              f"({row['rss_per_endpoint_without_rings']:.0f} without the rings), "
              f"heap {row['heap_per_endpoint']:.0f} B ({row['heap_per_endpoint_without_rings']:.0f} without the rings)")
    record = describe(device="pair (in-process)", loop="none: two stacks polled from Python on a virtual clock",
                      pinning="none", tcb_bytes=tcb, socket_slot_bytes=sock, ring_bytes_each=args.ring, rows=rows)
    if not args.no_json:
        write_json(args.json, record)


if __name__ == "__main__":
    main()
