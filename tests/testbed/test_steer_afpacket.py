"""Workers over AF_PACKET (root): a veth between two namespaces we create, the Linux stack on
one end, aiorusty workers on the other through `afpacket:VETH` (queue K of N keeps the flows
whose steer.flow_queue is K; ARP reaches every worker).

- `load -w 2`: each generator worker picks source ports that hash to itself, so the kernel
  server's replies come back to it: no errors, both workers busy. With --no-steer about half
  the connections' replies reach the other worker, which does not know them: errors.
- `serve -w 2`: both workers resolve the client by ARP and answer their share of the
  connections (per-worker counters both > 0), and each answer is exact (curl bodies)."""

import contextlib
import json
import os
import signal
import subprocess
import sys

import pytest
from _netns import need_tool, needs_root, netns, sh, unique, veth_pair
from test_tap import subnet

from aiorusty.testbed.http import generated_body

from ._util import ROOT

pytestmark = [needs_root, pytest.mark.timeout(180)]


@contextlib.contextmanager
def link():
    """(aiorusty ns, its veth, kernel ns, net): the kernel end has net.1/24 with TSO/GSO off
    (the driver drops super-frames), the aiorusty end is up with no address."""
    a, b, net = unique("rsta"), unique("rstb"), subnet()
    with netns() as ns_a, netns() as ns_k, veth_pair(a, b, ns_b=ns_k):
        sh("ip", "link", "set", a, "netns", ns_a)
        sh("sysctl", "-qw", f"net.ipv6.conf.{a}.disable_ipv6=1", ns=ns_a, check=False)
        sh("sysctl", "-qw", f"net.ipv6.conf.{b}.disable_ipv6=1", ns=ns_k, check=False)
        sh("ethtool", "-K", b, "tso", "off", "gso", "off", ns=ns_k, check=False)
        sh("ip", "addr", "add", f"{net}.1/24", "dev", b, ns=ns_k)
        sh("ip", "link", "set", b, "up", ns=ns_k)
        sh("ip", "link", "set", a, "up", ns=ns_a)
        try:
            yield ns_a, a, ns_k, net
        finally:
            sh("ip", "link", "del", b, ns=ns_k, check=False)   # the pair left the root namespace


def run_in(ns, *args, timeout=60):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "aiorusty", *args], env=env, cwd=ROOT,
                          timeout=timeout, capture_output=True, text=True, check=False)


@contextlib.contextmanager
def server_in(ns, *args, workers=1):
    """`aiorusty serve ARGS` in ns, until it said it is ready; SIGTERM and a clean exit after."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    srv = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "aiorusty", "serve",
                            "--workers", str(workers), "--duration", "60", *args], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        want = "workers ready" if workers > 1 else "aiorusty serve: http://"
        for _ in range(workers + 1):
            line = srv.stdout.readline()
            assert line, srv.stderr.read()
            if want in line:
                break
        else:
            raise AssertionError(f"server not ready: {line!r}")
        yield srv
    finally:
        if srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
        _, err = srv.communicate(timeout=30)
    assert srv.returncode == 0, err


def load_in(ns, url, iface, tmp_path, *extra, workers=2, conns=16):
    report = tmp_path / f"load-{len(list(tmp_path.iterdir()))}.json"
    args = ["load", url, "-d", "2", "-c", str(conns), "--workers", str(workers), "--json", str(report), *extra]
    if iface:
        args += ["--iface", iface]
    res = run_in(ns, *args, timeout=90)
    assert res.returncode == 0 or report.exists(), res.stderr
    return json.loads(report.read_text())


def test_two_generator_workers_get_their_own_replies(tmp_path):
    with link() as (ns_a, a, ns_k, net), \
            server_in(ns_k, "--kernel", "--host", f"{net}.1"):
        url, iface = f"http://{net}.1:8080/1k", f"afpacket:{a},ip={net}.2/24"
        r = load_in(ns_a, url, iface, tmp_path)
        # The other worker RSTs connections it does not know: errors, fewer connections.
        bad = load_in(ns_a, url, iface, tmp_path, "--no-steer", "--timeout", "1")
    assert r["errors"] == {} and r["connections"] == 16, r["errors"]
    assert [w["connections"] for w in r["workers"]] == [8, 8]
    assert all(w["requests"] > 0 for w in r["workers"]), r["workers"]
    assert r["requests"] > 0 and r.get("unanswered", 0) == 0
    assert bad["errors"] and bad["connections"] < 16, bad


def test_two_server_workers_both_answer(tmp_path):
    need_tool("curl")
    stats = tmp_path / "server.json"
    with link() as (ns_a, a, ns_k, net), \
            server_in(ns_a, "--iface", f"afpacket:{a},ip={net}.2/24", "--stats-json", str(stats), workers=2):
        url = f"http://{net}.2:8080"
        # 16 connections from the kernel: which worker gets each is the flow hash of its source port.
        r = load_in(ns_k, f"{url}/64", None, tmp_path, "--kernel", "--timeout", "2", workers=1)
        for size, n in (("64", 64), ("1k", 1024), ("16k", 16384)):
            got = subprocess.run(["ip", "netns", "exec", ns_k, "curl", "-sS", "--max-time", "5", f"{url}/{size}"],
                                 capture_output=True, timeout=30, check=False)
            assert got.returncode == 0 and got.stdout == generated_body(n), (size, got.stderr)
    s = json.loads(stats.read_text())
    per = [(w["worker"], w["connections"], w["requests"]) for w in s["workers"]]
    assert r["errors"] == {} and r["connections"] == 16, r["errors"]
    assert sum(c for _, c, _ in per) >= 16 + 3
    assert all(c > 0 and n > 0 for _, c, n in per), per     # 2^-18 chance that one worker got none


def test_workers_on_both_sides_across_the_middlebox(tmp_path):
    """`serve -w 2` and `load -w 2` over afpacket in the test-bed topology, Linux forwarding
    between them: every worker resolves its gateway, every connection stays with one worker
    on each side (before steering: 6 of 16 connections, 10 connect timeouts)."""
    from aiorusty.testbed.topology import NET_SRV, Topology, down, up
    topo = Topology(f"ts{os.getpid() % 10000}")
    stats = tmp_path / "server.json"
    try:
        up(topo)
        sp = topo.specs()
        with server_in(topo.ns["srv"], "--iface", sp["server"], "--stats-json", str(stats), workers=2):
            r = load_in(topo.ns["gen"], f"http://{NET_SRV}.10:8080/1k", sp["generator"], tmp_path)
    finally:
        down(topo)
    s = json.loads(stats.read_text())
    assert r["errors"] == {} and r["connections"] == 16, r["errors"]
    assert all(w["requests"] > 0 for w in r["workers"]), r["workers"]
    assert sum(w["connections"] for w in s["workers"]) == 16
    assert all(w["connections"] > 0 and w["requests"] > 0 for w in s["workers"]), s["workers"]
