"""Stack options from the environment (AIORUSTY_<OPTION>): value forms, errors, precedence,
a real loop's stack receiving them, and the README's Options table listing every one."""

import asyncio
import pathlib
import re

import pytest

import aiorusty
from aiorusty import _options, config
from aiorusty.testbed import loops

ROOT = pathlib.Path(__file__).resolve().parent.parent
IFACE = "loopback,ip=10.77.9.1/24"
LOOP_SETTINGS = {"AIORUSTY_IFACE": "interfaces", "AIORUSTY_BUSY_POLL_US": "busy_poll_us"}


@pytest.fixture
def clean_env(monkeypatch):
    """os.environ without any AIORUSTY_* variable the test run happened to inherit."""
    import os
    for var in list(os.environ):
        if var.upper().startswith("AIORUSTY_"):
            monkeypatch.delenv(var)
    return monkeypatch


# ---- value forms

@pytest.mark.parametrize("text, value", [
    ("4096", 4096), ("0", 0), ("64K", 64 << 10), ("64k", 64 << 10), ("64KiB", 64 << 10),
    ("4M", 4 << 20), ("4MiB", 4 << 20), ("4 mib", 4 << 20), (" 3G ", 3 << 30), ("1GiB", 1 << 30),
])
def test_byte_sizes_are_powers_of_1024(text, value):
    assert _options.parse("tcp_sndbuf", text) == value


@pytest.mark.parametrize("text, value", [
    ("500", 500), ("500us", 500), ("250ms", 250_000), ("30s", 30_000_000), ("2 S", 2_000_000),
])
def test_durations_in_microseconds(text, value):
    assert _options.parse("tcp_msl_us", text) == value


def test_every_field_has_a_kind_and_a_variable():
    env = {_options.env_name(name): "1" for name in _options.OPTIONS}
    assert _options.from_environ(env) == {name: 1 for name in _options.OPTIONS}
    assert {_options.kind(n) for n in ("tcp_sndbuf", "tcp_rcvbuf", "tcp_rcvbuf_max", "tcp_mem")} == {"bytes"}
    assert _options.kind("tcp_msl_us") == _options.kind("arp_timeout_us") == "duration"
    assert {_options.kind(n) for n in ("max_tcp_conns", "rx_budget", "ephemeral_lo", "seed")} == {"count"}


def test_fields_come_from_the_cffi_struct():
    from aiorusty._rusty import ffi
    from aiorusty.tcp._stack import _CONFIG_FIELDS
    assert set(_options.OPTIONS) == _CONFIG_FIELDS
    assert list(_options.OPTIONS) == [n for n, _ in ffi.typeof("struct rusty_stack_config").fields]


# ---- errors

@pytest.mark.parametrize("var, text, expected", [
    ("AIORUSTY_TCP_SNDBUF", "lots", "expected bytes, e.g. 2G or 2147483648"),
    ("AIORUSTY_TCP_SNDBUF", "1.5M", "expected bytes"),
    ("AIORUSTY_TCP_SNDBUF", "4MB", "expected bytes"),
    ("AIORUSTY_TCP_SNDBUF", "-1", "expected bytes"),
    ("AIORUSTY_TCP_SNDBUF", "4G", r"4294967296 bytes is out of range \(at most 4294967295 bytes\)"),
    ("AIORUSTY_TCP_MSL_US", "soon", "expected a duration, e.g. 30s, 250ms or 500us"),
    ("AIORUSTY_TCP_MSL_US", "1.5s", "expected a duration"),
    ("AIORUSTY_TCP_MSL_US", "2h", "expected a duration"),
    ("AIORUSTY_TCP_MSL_US", "5000s", "5000000000 us is out of range"),
    ("AIORUSTY_MAX_TCP_CONNS", "many", "expected a whole number, e.g. 200000"),
    ("AIORUSTY_MAX_TCP_CONNS", "200K", "expected a whole number"),
    ("AIORUSTY_EPHEMERAL_LO", "70000", r"70000 is out of range \(at most 65535\)"),
    ("AIORUSTY_SEED", str(1 << 64), r"18446744073709551616 is out of range \(at most 18446744073709551615\)"),
    ("AIORUSTY_BUSY_POLL_US", "fast", "expected a duration"),
    ("AIORUSTY_BUSY_POLL_US", "2s", "out of range"),
])
def test_bad_values_name_variable_value_and_form(var, text, expected):
    with pytest.raises(ValueError, match=f"^{var}={re.escape(repr(text))}: {expected}"):
        config.load(environ={var: text})


@pytest.mark.parametrize("var, meant", [
    ("AIORUSTY_TCP_SNDBUFF", "AIORUSTY_TCP_SNDBUF"),
    ("AIORUSTY_MAX_TCP_CONN", "AIORUSTY_MAX_TCP_CONNS"),
    ("AIORUSTY_tcp_sndbuf", "AIORUSTY_TCP_SNDBUF"),
    ("AIORUSTY_BUSY_POLL", "AIORUSTY_BUSY_POLL_US"),
    ("AIORUSTY_IFACES", "AIORUSTY_IFACE"),
    ("AIORUSTY_SEEDS", "AIORUSTY_SEED"),
])
def test_a_typo_of_an_option_is_refused(var, meant):
    with pytest.raises(ValueError, match=f"^{var} is not an aiorusty setting: did you mean {meant}\\?"):
        config.load(environ={var: "1"})


def test_other_aiorusty_variables_are_ignored():
    # Build and test switches of this repository, and names nowhere near an option.
    env = {"AIORUSTY_SANITIZE": "1", "AIORUSTY_DEBUG": "1", "AIORUSTY_SLOW": "1", "AIORUSTY_SRC": "/x",
           "AIORUSTY_TESTBED_CHUNK": "65536", "AIORUSTY_LOG_LEVEL": "debug"}
    assert config.load(environ=env).stack_options == {}


def test_empty_variable_is_unset():
    assert config.load(environ={"AIORUSTY_TCP_SNDBUF": "", "AIORUSTY_SEED": "  "}).stack_options == {}


def test_unknown_keyword_argument_is_refused_without_an_interface():
    with pytest.raises(TypeError, match="unknown stack option.*tcp_sndbuff.*known: busy_poll_us"):
        config.load(environ={}, tcp_sndbuff=1)


# ---- precedence

def test_arguments_win_over_the_environment():
    env = {"AIORUSTY_TCP_SNDBUF": "1M", "AIORUSTY_MAX_TCP_CONNS": "100", "AIORUSTY_SEED": "7"}
    assert config.load(environ=env).stack_options == {"tcp_sndbuf": 1 << 20, "max_tcp_conns": 100, "seed": 7}
    assert config.load(environ=env, tcp_sndbuf=4096, seed=None).stack_options == \
        {"tcp_sndbuf": 4096, "max_tcp_conns": 100, "seed": 7}


# ---- a real loop's stack

ENV = {"AIORUSTY_IFACE": IFACE, "AIORUSTY_MAX_TCP_CONNS": "1234", "AIORUSTY_TCP_SNDBUF": "1M",
       "AIORUSTY_TCP_MSL_US": "250ms", "AIORUSTY_SEED": "42",
       "AIORUSTY_EPHEMERAL_LO": "40000", "AIORUSTY_EPHEMERAL_HI": "40000"}


def _set(env, monkeypatch):
    for var, value in env.items():
        monkeypatch.setenv(var, value)


def _check_stack(stack, **changed):
    want = {"max_tcp_conns": 1234, "tcp_sndbuf": 1 << 20, "tcp_msl_us": 250_000, "seed": 42,
            "ephemeral_lo": 40000, "ephemeral_hi": 40000}
    want.update(changed)
    got = stack.config()
    assert {k: got[k] for k in want} == want
    assert got["max_sockets"] == (1 << 20) - 1     # not set: the C default


async def _udp_port():
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("10.77.9.1", 0))
    try:
        return transport.get_extra_info("sockname")[1], loop.stack.config()
    finally:
        transport.close()


def test_environment_reaches_the_stack_of_new_event_loop(clean_env):
    _set(ENV, clean_env)
    loop = aiorusty.new_event_loop()
    try:
        _check_stack(loop.stack)
        port, _ = loop.run_until_complete(_udp_port())
        assert port == 40000                # the stack used AIORUSTY_EPHEMERAL_LO/HI
    finally:
        loop.close()


def test_environment_reaches_the_stack_through_runner_and_policy(clean_env):
    _set(ENV, clean_env)
    with asyncio.Runner(loop_factory=aiorusty.new_event_loop) as runner:      # as asyncio.run(loop_factory=)
        port, cfg = runner.run(_udp_port())
    assert port == 40000 and cfg["max_tcp_conns"] == 1234
    aiorusty.install()
    try:
        loop = asyncio.new_event_loop()
        try:
            _check_stack(loop.stack)
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(None)


def test_arguments_win_on_a_real_loop(clean_env):
    _set(ENV, clean_env)
    loop = aiorusty.new_event_loop(max_tcp_conns=99, tcp_sndbuf=None)
    try:
        _check_stack(loop.stack, max_tcp_conns=99)
    finally:
        loop.close()


def test_testbed_stacks_read_the_environment(clean_env):
    # aiorusty serve / load build their stacks here; their own flags are arguments and win.
    _set(ENV, clean_env)
    stack = loops.open_stack(IFACE, tcp_msl_us=1000)
    try:
        _check_stack(stack, tcp_msl_us=1000)
    finally:
        stack.close()


def test_a_bad_variable_fails_loop_creation(clean_env):
    _set({"AIORUSTY_IFACE": IFACE, "AIORUSTY_TCP_SNDBUF": "lots"}, clean_env)
    with pytest.raises(ValueError, match="AIORUSTY_TCP_SNDBUF='lots'"):
        aiorusty.new_event_loop()


# ---- the README's Options table

def _readme_options():
    """{env var: keyword cell} of every row of the Options table in README.md."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Options\n(.*?)^## ", text, re.S | re.M)
    assert section, "README.md has no '## Options' section"
    rows = {}
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`AIORUSTY_"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_every_option_has_a_readme_row():
    rows = _readme_options()
    missing = [f"{_options.env_name(o)} / {o}=" for o in _options.OPTIONS
               if rows.get(_options.env_name(o)) != f"`{o}=`"]
    for var, kw in LOOP_SETTINGS.items():
        if rows.get(var) != f"`{kw}=`":
            missing.append(f"{var} / {kw}=")
    assert not missing, ("stack options with no row in README.md's Options table "
                         "(| `AIORUSTY_NAME` | `name=` | default | what it does |): " + ", ".join(missing))


def test_every_readme_row_is_an_option():
    known = {_options.env_name(o) for o in _options.OPTIONS} | set(LOOP_SETTINGS)
    stale = sorted(set(_readme_options()) - known)
    assert not stale, f"README.md's Options table lists settings that do not exist: {', '.join(stale)}"
