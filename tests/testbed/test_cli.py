"""The CLI: each command's --help is complete (every flag says its default); `demo` still runs."""

import os

import pytest

from aiorusty.cli import build_parser

from ._util import cli

COMMANDS = ["demo", "serve", "load", "bench", "testbed"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_runs_and_names_every_default(command):
    res = cli(command, "--help", timeout=30)
    assert res.returncode == 0, res.stderr
    assert f"usage: aiorusty {command}" in res.stdout
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    for action in sub._actions:
        if action.dest in ("help",) or not action.option_strings:
            continue
        assert "default" in (action.help or ""), f"{command} {action.option_strings}: help names no default"
        assert action.option_strings[-1] in res.stdout


def test_top_level_help_lists_the_commands():
    res = cli("--help", timeout=30)
    assert res.returncode == 0
    for c in COMMANDS:
        assert c in res.stdout


def test_demo_still_runs():
    res = cli("demo", "--count", "50", timeout=60)
    assert res.returncode == 0, res.stderr
    assert "50/50 datagrams" in res.stdout


def test_load_refuses_an_unbounded_run_and_a_bad_url():
    assert cli("load", "-d", "0", timeout=30).returncode != 0
    res = cli("load", "https://10.0.0.1/", timeout=30)
    assert res.returncode != 0 and "http://HOST" in res.stderr


def test_bench_writes_json_markdown_and_charts(tmp_path):
    out = tmp_path / "res"
    res = cli("bench", "--quick", "--loops", "asyncio,aiorusty", "--scenarios", "small", "--duration", "1",
              "--out", str(out), timeout=120)
    assert res.returncode == 0, res.stderr
    import json
    data = json.loads((out / "bench.json").read_text())
    loops = {s["loop"] for s in data["summary"]}
    assert loops == {"asyncio", "aiorusty"} and not data["failures"]
    for s in data["summary"]:
        assert s["rps"] > 0 and s["server_cpu_us_per_req"] > 0 and s["errors"] == 0
    if len(os.sched_getaffinity(0)) >= 2:
        # every run records the cores' copy ceiling measured just before it
        assert all(r["xcore_gbps"] > 0 for r in data["runs"])
    assert data["meta"]["pinning"] == {"server_core": 0, "client_core": 1}
    assert data["meta"]["machine"]["kernel"] and data["meta"]["machine"]["python"]
    md = (out / "REPORT.md").read_text()
    assert "| scenario | loop |" in md and "aiorusty" in md
    assert "small" in res.stdout and "req/s" in res.stdout
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    for png in ("rps.png", "cpu.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
