"""The CLI: each command's --help is complete (every flag says its default); `demo` still runs."""

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
