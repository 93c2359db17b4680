"""Workers over shm queues: one process per queue, every connection handled by one worker
(per-worker counters; a connection whose packets reached the wrong worker would be reset),
source ports picked so a multi-queue peer steers replies back, and a dying worker fails the run."""

import json
import os
import random
import re
import signal
import time

from aiorusty.testbed.steer import PortPicker, flow_queue

from ._util import cli, popen
from .test_serve_load_shm import CLIENT_IP, SERVER_IP, start_server, stop_server


def test_flow_hash_is_symmetric_and_spreads():
    rng = random.Random(3)
    seen = [0, 0]
    for _ in range(2000):
        a, b = rng.getrandbits(32), rng.getrandbits(32)
        p, q = rng.randrange(65536), rng.randrange(65536)
        assert flow_queue(a, b, p, q, 4) == flow_queue(b, a, q, p, 4)
        seen[flow_queue(a, b, p, q, 2)] += 1
    assert min(seen) > 800
    picker = PortPicker("10.0.0.2", "10.0.0.1", 8080, 1, 2)
    assert all(flow_queue("10.0.0.2", "10.0.0.1", picker.next(), 8080, 2) == 1 for _ in range(100))


def load(name, tmp_path, *extra, workers=1, conns=16):
    report = tmp_path / f"load-{time.monotonic_ns()}.json"
    res = cli("load", f"http://{SERVER_IP}:8080/64", "--iface", f"shm:{name},ip={CLIENT_IP}/24", "-d", "2",
              "-c", str(conns), "--workers", str(workers), "--json", str(report), *extra, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(report.read_text())


def test_two_server_workers_one_steering_client(tmp_path):
    name = f"tbw{os.getpid()}"
    stats = tmp_path / "server.json"
    srv = start_server(name, "--stats-json", str(stats), workers=2)
    try:
        r = load(name, tmp_path, conns=16)
    finally:
        stop_server(srv)
    s = json.loads(stats.read_text())
    per = [(w["worker"], w["connections"], w["requests"]) for w in s["workers"]]
    assert r["errors"] == {} and r["connections"] == 16, r["errors"]
    assert sum(c for _, c, _ in per) == 16                 # each connection accepted exactly once
    assert all(c > 0 and n > 0 for _, c, n in per), per    # both workers served (2^-15 chance otherwise)
    assert sum(n for _, _, n in per) >= r["requests"]
    assert sorted(tuple(w["core"]) for w in s["workers"]) == [(0,), (1,)] or len(os.sched_getaffinity(0)) < 2


def test_client_workers_pick_ports_that_come_back_to_them(tmp_path):
    name = f"tbp{os.getpid()}"
    # One server process holding both queues (it steers replies by the flow hash).
    srv = popen("serve", "--iface", f"shm:{name},ip={SERVER_IP}/24,queues=2", "--workers", "1",
                "--duration", "40")
    assert "aiorusty serve" in srv.stdout.readline()
    try:
        r = load(name, tmp_path, workers=2, conns=16)
        # Without the port choice, about half the connections' replies reach the other worker.
        bad = load(name, tmp_path, "--no-steer", "--timeout", "1", workers=2, conns=16)
    finally:
        stop_server(srv)
    assert r["errors"] == {} and r["connections"] == 16
    assert [w["connections"] for w in r["workers"]] == [8, 8]
    assert all(w["requests"] > 0 for w in r["workers"])
    assert bad["errors"] and bad["connections"] < 16


def test_a_dying_worker_fails_the_run():
    name = f"tbd{os.getpid()}"
    srv = popen("serve", "--iface", f"shm:{name},ip={SERVER_IP}/24", "--workers", "2", "--duration", "30")
    pids = []
    for _ in range(3):
        line = srv.stdout.readline()
        m = re.search(r"pid (\d+)", line)
        if m:
            pids.append(int(m.group(1)))
    assert len(pids) == 2
    os.kill(pids[1], signal.SIGKILL)
    out, err = srv.communicate(timeout=30)
    assert srv.returncode == 2
    assert re.search(r"worker \d \(pid %d, core \d\) died with signal 9" % pids[1], err), err


async def _where(index, count):
    import asyncio
    loop = asyncio.get_running_loop()
    return index, count, sorted(os.sched_getaffinity(0)), str(loop.stack.interfaces[0])


def test_run_main_in_workers_pins_and_gives_each_worker_its_queue():
    from aiorusty.testbed.workers import run_main_in_workers
    name = f"tbh{os.getpid()}"
    got = run_main_in_workers(_where, 2, interfaces=[f"shm:{name},ip=10.66.0.1/24"], cores=[0, 1])
    assert [g[:2] for g in got] == [(0, 2), (1, 2)]
    if len(os.sched_getaffinity(0)) >= 2:
        assert [g[2] for g in got] == [[0], [1]]
    assert got[0][3].endswith("queues=2,queue=0") and got[1][3].endswith("queues=2,queue=1")


def test_aiorusty_run_with_workers_is_the_same_launcher():
    import aiorusty
    name = f"tbr{os.getpid()}"
    got = aiorusty.run(_where, workers=2, interfaces=[f"shm:{name},ip=10.66.1.1/24"])
    assert [g[:2] for g in got] == [(0, 2), (1, 2)]
    assert got[0][3].endswith("queues=2,queue=0") and got[1][3].endswith("queues=2,queue=1")
