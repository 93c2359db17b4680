"""`aiorusty serve` + `aiorusty load` over the shm link (two processes, no root): a 2-second run,
exact responses checked afterwards from a third stack on the same link, a well-formed JSON report."""

import asyncio
import json
import os
import signal

from aiorusty.testbed.http import generated_body

from ._util import cli, mask_date, popen

SERVER_IP, CLIENT_IP = "10.81.0.1", "10.81.0.2"
# A generated page's response header, Date masked (mask_date), up to its Content-Length line.
OK_HEAD = (b"HTTP/1.1 200 OK\r\nServer: aiorusty\r\nDate: X\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Length: %d\r\n")
DATE_LEN = 28                           # the real Date value's length over "X"


def load_json(name, report, *args, timeout=60, status=0):
    """`aiorusty load ARGS` on a stack of its own on the link (one worker): its JSON report,
    after checking its exit status (1: a run that completed no request)."""
    res = cli("load", *args, "--iface", f"shm:{name},ip={CLIENT_IP}/24", "--workers", "1", "--json", str(report),
              timeout=timeout)
    assert res.returncode == status, res.stderr
    return json.loads(report.read_text())


def start_server(name, *extra, workers=1, port=8080):
    srv = popen("serve", "--iface", f"shm:{name},ip={SERVER_IP}/24", "--port", str(port), "--workers", str(workers),
                "--duration", "40", *extra)
    want = "workers ready" if workers > 1 else "aiorusty serve: http://"
    for _ in range(workers + 1):
        line = srv.stdout.readline()
        assert line, srv.stderr.read()
        if want in line:
            return srv
    raise AssertionError(f"server did not report ready: {line!r}")


def stop_server(srv):
    srv.send_signal(signal.SIGTERM)
    out, err = srv.communicate(timeout=20)
    assert srv.returncode == 0, err
    return out, err


def fetch_exact(name, requests):
    """Raw bytes of the responses to `requests`, from a stack of our own on the link."""
    import aiorusty.runner

    async def go():
        r, w = await asyncio.open_connection(SERVER_IP, 8080)
        w.write(requests)
        data = b""
        while True:
            chunk = await asyncio.wait_for(r.read(1 << 20), 5)
            if not chunk:
                break
            data += chunk
        w.close()
        return data
    return aiorusty.runner.run(go(), interfaces=[f"shm:{name},ip={CLIENT_IP}/24"])


def test_two_second_run_and_json_report(tmp_path):
    name = f"tbl{os.getpid()}"
    stats = tmp_path / "server.json"
    report = tmp_path / "load.json"
    srv = start_server(name, "--stats-json", str(stats))
    try:
        res = cli("load", f"http://{SERVER_IP}:8080/1k", "--iface", f"shm:{name},ip={CLIENT_IP}/24",
                  "-d", "2", "-c", "8", "--workers", "1", "--json", str(report), timeout=60)
        assert res.returncode == 0, res.stderr
        assert "Requests/sec" in res.stdout
        got = fetch_exact(name, b"GET /1k HTTP/1.1\r\nHost: x\r\n\r\nGET /64 HTTP/1.1\r\nConnection: close\r\n\r\n")
    finally:
        stop_server(srv)
    head = OK_HEAD
    assert mask_date(got) == (head % 1024 + b"\r\n" + generated_body(1024)
                              + head % 64 + b"Connection: close\r\n\r\n" + generated_body(64))
    r = json.loads(report.read_text())
    s = json.loads(stats.read_text())
    assert r["requests"] > 0 and r["errors"] == {} and r["statuses"] == {"200": r["requests"]}
    assert r["connections"] == 8
    assert r["bytes"] == r["requests"] * (len(head % 1024) + DATE_LEN + 2 + 1024)
    assert 1.5 < r["duration_s"] < 3.5
    lat = r["latency_us"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert r["wire_rx_bytes"] > r["bytes"] and r["wire_gbps"] > r["goodput_gbps"] > 0
    assert r["machine"]["kernel"] and r["config"]["connections"] == 8
    # The server answered every request the generator counted, plus our two.
    assert s["requests"] == r["requests"] + r["unanswered"] + 2 or s["requests"] == r["requests"] + 2
    assert s["responses"] == {"200": s["requests"]}
    # Both loops report how they spent their ticks (polls, those that found events, sleeps).
    for ticks in (r["workers"][0]["loop_ticks"], s["workers"][0]["loop_ticks"]):
        assert ticks["polls"] >= ticks["polls_with_events"] > 0 and ticks["sleeps"] >= 0, ticks


def test_count_bounded_new_connection_run(tmp_path):
    name = f"tbn{os.getpid()}"
    report = tmp_path / "load.json"
    srv = start_server(name)
    try:
        res = cli("load", f"http://{SERVER_IP}:8080/64", "--iface", f"shm:{name},ip={CLIENT_IP}/24",
                  "-n", "300", "-d", "20", "-c", "4", "--new-connection", "--workers", "1", "--json", str(report),
                  timeout=60)
        assert res.returncode == 0, res.stderr
    finally:
        stop_server(srv)
    r = json.loads(report.read_text())
    assert r["requests"] == 300 and r["connections"] == 300 and r["errors"] == {}


def test_open_loop_rate_and_weighted_url_list(tmp_path):
    name = f"tbr{os.getpid()}"
    urls = tmp_path / "urls.txt"
    urls.write_text(f"3 http://{SERVER_IP}:8080/64\n# a comment\n1 http://{SERVER_IP}:8080/1k\n"
                    f"1 http://{SERVER_IP}:8080/missing\n")
    rate_json, list_json = tmp_path / "rate.json", tmp_path / "list.json"
    srv = start_server(name)
    try:
        res = cli("load", f"http://{SERVER_IP}:8080/64", "--iface", f"shm:{name},ip={CLIENT_IP}/24", "-d", "1.5",
                  "-c", "4", "--rate", "1000", "--workers", "1", "--json", str(rate_json), timeout=60)
        assert res.returncode == 0, res.stderr
        res = cli("load", "--url-list", str(urls), "--iface", f"shm:{name},ip={CLIENT_IP}/24", "-n", "2000",
                  "-d", "20", "-c", "4", "--pipeline", "4", "--workers", "1", "--json", str(list_json), timeout=60)
        assert res.returncode == 0, res.stderr
    finally:
        stop_server(srv)
    rate = json.loads(rate_json.read_text())
    # Open loop: never more than the schedule (1000/s for 1.5 s, plus the first of each connection).
    assert 0 < rate["requests"] <= 1500 + 4 and rate["errors"] == {}
    lst = json.loads(list_json.read_text())
    assert lst["requests"] == 2000
    per = lst["per_url"]
    assert set(per) == {"/64", "/1k", "/missing"} and sum(per.values()) == 2000
    assert per["/64"] > per["/1k"] and per["/64"] > per["/missing"]          # weight 3 vs 1 (seeded)
    assert lst["statuses"] == {"200": per["/64"] + per["/1k"], "404": per["/missing"]}
    assert lst["errors"] == {"bad_status": per["/missing"]}


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kernel_and_uvloop_modes(tmp_path):
    for flag in ("--kernel", "--uvloop"):
        port = _free_port()
        srv = popen("serve", flag, "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--duration", "30")
        try:
            assert f"on {'asyncio' if flag == '--kernel' else 'uvloop'} (kernel)" in srv.stdout.readline()
            report = tmp_path / f"k{port}.json"
            res = cli("load", f"http://127.0.0.1:{port}/16k", flag, "-n", "500", "-d", "10", "-c", "4",
                      "--workers", "1", "--json", str(report), timeout=60)
            assert res.returncode == 0, res.stderr
        finally:
            stop_server(srv)
        r = json.loads(report.read_text())
        assert r["requests"] == 500 and r["errors"] == {} and r["wire_gbps"] is None
        assert r["bytes"] > 500 * 16384


def test_connect_timeout_is_counted_and_the_run_ends(tmp_path):
    # The server's side of the link drops every frame, so no connect can finish:
    # each is cancelled once older than --timeout and counted, and the run still
    # stops by itself at -d. The server never answers ARP either: the SYNs still
    # held when resolution gives up (3 s, as Linux) fail with EHOSTUNREACH.
    name = f"tbt{os.getpid()}"
    report = tmp_path / "load.json"
    srv = popen("serve", "--iface", f"shm:{name},ip={SERVER_IP}/24,drop=1", "--port", "8080", "--duration", "40")
    try:
        assert "aiorusty serve: http://" in srv.stdout.readline(), srv.stderr.read()
        r = load_json(name, report, f"http://{SERVER_IP}:8080/64", "-d", "3", "-c", "2", "--timeout", "1",
                      status=1)
    finally:
        stop_server(srv)
    assert r["requests"] == 0 and r["connections"] == 0
    assert r["errors"].get("connect_timeout", 0) >= 2, r["errors"]
    assert set(r["errors"]) <= {"connect_timeout", "connect_error"}, r["errors"]
    errnos = {k for w in r["workers"] for k in w["connect_errnos"]}
    assert errnos <= {"EHOSTUNREACH"}, errnos


def test_pipelined_big_and_small_responses_counted_exactly(tmp_path):
    # 1 MiB bodies span many reads and the next response's header starts in the
    # middle of one: the generator counts bodies in the stack's receive ring
    # (views) and copies out only header windows; every byte must be accounted.
    name = f"tbp{os.getpid()}"
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"1 http://{SERVER_IP}:8080{p}\n" for p in ("/64", "/1k", "/1m")))
    report = tmp_path / "load.json"
    srv = start_server(name)
    try:
        r = load_json(name, report, "--url-list", str(urls), "-n", "90", "-d", "30", "-c", "3", "--pipeline", "3",
                      timeout=90)
    finally:
        stop_server(srv)
    assert r["requests"] == 90 and r["errors"] == {} and r["statuses"] == {"200": 90}
    size = {"/64": 64, "/1k": 1024, "/1m": 1 << 20}
    assert r["bytes"] == sum(n * (len(OK_HEAD % size[p]) + DATE_LEN + 2 + size[p]) for p, n in r["per_url"].items())
