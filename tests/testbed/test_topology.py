"""`aiorusty testbed up/down` (root): namespaces built idempotently and removed, impairments
installed, and a short serve + load run across the middlebox (Linux forwarding)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from aiorusty.testbed.topology import Topology, _existing_ns, down, up

from ._util import ROOT
from _netns import needs_root

pytestmark = [needs_root, pytest.mark.timeout(120)]


@pytest.fixture
def topo():
    t = Topology(f"tb{os.getpid() % 10000}")
    try:
        yield t
    finally:
        down(t)


def test_up_is_idempotent_and_down_cleans_up(topo):
    up(topo, loss=1.5, rate="200mbit")
    up(topo, loss=1.5, rate="200mbit")              # again: rebuilt, not an error
    assert set(topo.ns.values()) <= _existing_ns()
    rules = subprocess.run(["ip", "netns", "exec", topo.ns["mb"], "nft", "list", "ruleset"],
                           stdout=subprocess.PIPE, text=True).stdout
    assert "numgen random mod 10000 < 150" in rules
    qd = subprocess.run(["ip", "netns", "exec", topo.ns["mb"], "tc", "qdisc", "show", "dev", topo.links["mb_gen"]],
                        stdout=subprocess.PIPE, text=True).stdout
    assert "tbf" in qd and "200Mbit" in qd
    assert sorted(down(topo)) == sorted(topo.ns.values())
    assert not set(topo.ns.values()) & _existing_ns()
    assert down(topo) == []


def test_serve_and_load_across_the_middlebox(topo, tmp_path):
    up(topo)
    sp = topo.specs()
    env = dict(os.environ, PYTHONPATH=ROOT)
    py = [sys.executable, "-m", "aiorusty"]
    stats, report = tmp_path / "s.json", tmp_path / "l.json"
    srv = subprocess.Popen(["ip", "netns", "exec", topo.ns["srv"], *py, "serve", "-w", "1", "--iface", sp["server"],
                            "--duration", "60", "--stats-json", str(stats)], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "aiorusty serve" in srv.stdout.readline(), srv.stderr.read()
        res = subprocess.run(["ip", "netns", "exec", topo.ns["gen"], *py, "load", "-w", "1", "--iface",
                              sp["generator"], "-d", "2", "-c", "4", "--json", str(report),
                              "http://10.91.2.10:8080/16k"], env=env, cwd=ROOT, timeout=60,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert res.returncode == 0, res.stderr
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.communicate(timeout=20)
    r = json.loads(report.read_text())
    s = json.loads(stats.read_text())
    assert r["requests"] > 0 and r["errors"] == {} and r["statuses"] == {"200": r["requests"]}
    assert s["requests"] >= r["requests"] and s["connections"] == 4
    # Every response crossed the middlebox: the generator's stack received them from its gateway.
    assert r["wire_rx_bytes"] > r["requests"] * 16384
