"""`aiorusty load` at many connections: source addresses from an ip= range (a narrow
--source-ports range runs out after 100 connections per address, so 300 connections
need three), --connect-rate pacing, and --hold (open, keep idle, one request on each),
against `aiorusty serve` over shm; the pieces (Sources, TokenBucket) on their own."""

import asyncio
import errno
import json
import os
import time

from aiorusty.testbed.pace import TokenBucket
from aiorusty.testbed.sources import Sources
from aiorusty.testbed.steer import flow_queue

from ._util import cli
from .test_serve_load_shm import SERVER_IP, start_server, stop_server

CLIENT_IPS = "10.81.0.2-10.81.0.5"


def run_load(name, tmp_path, *args, status=0):
    report = tmp_path / f"load-{time.monotonic_ns()}.json"
    res = cli("load", f"http://{SERVER_IP}:8080/64", "--iface", f"shm:{name},ip={CLIENT_IPS}/24", "--workers", "1",
              "--source-ports", "60000-60099", "--json", str(report), *args, timeout=90)
    assert res.returncode == status, res.stderr
    return json.loads(report.read_text()), res


def test_connections_spill_onto_the_next_address(tmp_path):
    # --hold, so the counts do not depend on how fast the 300 connections open: a
    # burst of SYNs to a neighbour not resolved yet loses those past ARP's hold
    # queue (arp.c HOLD_MAX) and waits for the SYN retransmission.
    name = f"tbs{os.getpid()}"
    srv = start_server(name)
    try:
        r, res = run_load(name, tmp_path, "-c", "300", "-d", "30", "--hold", "0.1")
    finally:
        stop_server(srv)
    assert r["errors"] == {} and r["connect_failed"] == 0, r["errors"]
    assert r["connections"] == 300 and r["connections_open_peak"] == 300
    w = r["workers"][0]
    assert w["source_addresses"] == ["10.81.0.2", "10.81.0.3", "10.81.0.4"] and w["connect_errnos"] == {}
    assert r["source_addresses"] == 3 and r["hold"]["answered"] == 300
    assert "300 opened from 3 source addresses" in res.stdout


def test_hold_mode_paced_opens_all_answer(tmp_path):
    name = f"tbh{os.getpid()}"
    srv = start_server(name)
    try:
        r, res = run_load(name, tmp_path, "-c", "400", "-d", "30", "--hold", "0.5", "--connect-rate", "200")
    finally:
        stop_server(srv)
    h = r["hold"]
    assert h == {"connections": 400, "established": 400, "held": 400, "answered": 400, "open_s": h["open_s"],
                 "hold_s": 0.5}, h
    assert r["requests"] == 400 and r["statuses"] == {"200": 400} and r["errors"] == {}
    assert r["source_addresses"] == 4
    # 400 opens at 200/s take about 2 s: a loose lower bound, and the first
    # once-a-second sample saw only part of them open.
    assert h["open_s"] >= 0.5 * 400 / 200
    first = r["workers"][0]["progress"][0]
    assert 0 < first[3] < 400, r["workers"][0]["progress"]
    assert "400 of 400 established" in res.stdout and "400 answered" in res.stdout


def test_load_refuses_bad_new_flags():
    for args, words in ((["--hold", "1", "--new-connection"], "does not combine"),
                        (["--connect-rate", "-5"], "--connect-rate -5"),
                        (["--source-ports", "9-3"], "--source-ports 9-3: expected LO-HI"),
                        (["--source-ports", "x"], "expected LO-HI")):
        res = cli("load", "-d", "1", *args, timeout=30)
        assert res.returncode != 0 and words in res.stderr, (args, res.stderr)


def test_sources_unsteered_move_on_eaddrnotavail():
    one = Sources(["10.0.0.2"], "10.0.0.1", 80)
    assert one.next() is None                           # one address: the stack chooses, as before
    assert not one.exhausted(None, OSError(errno.EADDRNOTAVAIL, "x"))
    s = Sources(["10.0.0.2", "10.0.0.3", "10.0.0.4"], "10.0.0.1", 80)
    assert s.next() == ("10.0.0.2", 0)
    full = OSError(errno.EADDRNOTAVAIL, "no port")
    assert s.exhausted(("10.0.0.2", 0), full) and s.next() == ("10.0.0.3", 0)
    assert s.exhausted(("10.0.0.3", 0), full) and s.next() == ("10.0.0.4", 0)
    assert not s.exhausted(("10.0.0.4", 0), full)     # all three full: an error to count
    assert not s.exhausted(("10.0.0.2", 0), OSError(errno.ECONNREFUSED, "refused"))
    s.connected(("10.0.0.2", 0))
    assert s.used == {"10.0.0.2"} and s.tried == 0


def test_sources_steered_ports_land_on_the_worker_and_spread_over_addresses():
    s = Sources(["10.0.0.2", "10.0.0.3"], "10.0.0.1", 8080, worker=1, workers=2, steer=True, ports=(30000, 30199))
    picks = [s.next() for _ in range(400)]
    for ip, port in picks:
        assert 30000 <= port <= 30199 and flow_queue(ip, "10.0.0.1", port, 8080, 2) == 1
    per_ip = {ip: [p for i, p in picks if i == ip] for ip in ("10.0.0.2", "10.0.0.3")}
    n2 = len(set(per_ip["10.0.0.2"]))
    # every port of the first address once, then the second address's
    assert picks[:n2] == [("10.0.0.2", p) for p in per_ip["10.0.0.2"][:n2]] and picks[n2][0] == "10.0.0.3"
    assert len(set(picks)) == len(picks[:n2 + len(set(per_ip["10.0.0.3"]))])


def test_token_bucket_paces_by_count():
    loop = asyncio.new_event_loop()
    try:
        bucket = TokenBucket(loop, 100)
        granted = []

        async def one(i):
            await bucket.take()
            granted.append(i)

        async def main():
            t0 = time.monotonic()
            tasks = [asyncio.ensure_future(one(i)) for i in range(60)]
            await asyncio.sleep(0.1)
            early = len(granted)
            await asyncio.gather(*tasks)
            return early, time.monotonic() - t0

        early, took = loop.run_until_complete(main())
        bucket.close()
    finally:
        loop.close()
    assert granted == list(range(60))                   # in order, first come first served
    assert early < 60 and took >= 0.5 * 59 / 100
