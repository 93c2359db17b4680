"""Configuration and entry points: config.load, new_event_loop, run, asyncio.Runner /
asyncio.run(loop_factory=), EventLoopPolicy and install()."""

import asyncio
import sys
import unittest
import warnings

import pytest

from aiorusty import config
from aiorusty.loop import RustyEventLoop
from aiorusty.nic import InterfaceSpecError
from aiorusty.policy import EventLoopPolicy, install
from aiorusty.runner import new_event_loop, run

from ._base import STACK_IFACE, stack_available


def test_config_from_arguments_and_env():
    env = {"AIORUSTY_IFACE": "loopback,ip=10.1.0.1/24; shm:demo,ip=10.2.0.1/24", "AIORUSTY_BUSY_POLL_US": "250"}
    cfg = config.load(environ=env)
    assert [i.driver for i in cfg.interfaces] == ["loopback", "shm"]
    assert str(cfg.interfaces[1].ip) == "10.2.0.1/24"
    assert cfg.busy_poll_us == 250 and cfg.enabled
    assert config.load(interfaces=(), environ=env).interfaces == ()          # argument wins
    assert config.load(interfaces="loopback,ip=10.3.0.1/24", busy_poll_us=0, environ=env).busy_poll_us == 0
    assert config.load(environ={}).interfaces == () and not config.load(environ={}).enabled
    assert config.load(environ={}).busy_poll_us == config.DEFAULT_BUSY_POLL_US
    assert config.load(environ={}, seed=5).stack_options == {"seed": 5}


def test_config_errors_say_where():
    with pytest.raises(InterfaceSpecError, match="AIORUSTY_IFACE.*unknown driver"):
        config.load(environ={"AIORUSTY_IFACE": "bogus:x"})
    with pytest.raises(ValueError, match="AIORUSTY_BUSY_POLL_US='fast'"):
        config.load(environ={"AIORUSTY_BUSY_POLL_US": "fast"})
    with pytest.raises(ValueError, match="out of range"):
        config.load(busy_poll_us=-1, environ={})


async def _which_loop():
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


def test_run_like_asyncio_run(monkeypatch):
    monkeypatch.delenv("AIORUSTY_IFACE", raising=False)
    assert run(_which_loop()) is RustyEventLoop
    with pytest.raises(ValueError):
        run(lambda: None)

    async def nested():
        coro = _which_loop()
        try:
            run(coro)
        finally:
            coro.close()
    with pytest.raises(RuntimeError, match="running event loop"):
        run(nested())


def test_run_debug_flag(monkeypatch):
    monkeypatch.delenv("AIORUSTY_IFACE", raising=False)

    async def dbg():
        return asyncio.get_running_loop().get_debug()
    assert run(dbg(), debug=True) is True
    assert run(dbg(), debug=False) is False


def test_new_event_loop_without_interface(monkeypatch):
    monkeypatch.delenv("AIORUSTY_IFACE", raising=False)
    loop = new_event_loop()
    try:
        assert loop.stack is None
        assert loop.route("10.77.0.1") == "kernel"
        assert loop.run_until_complete(_which_loop()) is RustyEventLoop
    finally:
        loop.close()


@unittest.skipUnless(stack_available(), "aiorusty.tcp.Stack is not merged yet")
def test_new_event_loop_reads_env(monkeypatch):
    monkeypatch.setenv("AIORUSTY_IFACE", STACK_IFACE)
    loop = new_event_loop()
    try:
        assert loop.stack is not None
        assert loop.route("10.77.0.1") == "stack"
        assert isinstance(loop.stack.stats(), dict)
    finally:
        loop.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is 3.11+")
def test_asyncio_runner_loop_factory(monkeypatch):
    monkeypatch.delenv("AIORUSTY_IFACE", raising=False)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        assert runner.run(_which_loop()) is RustyEventLoop
        assert isinstance(runner.get_loop(), RustyEventLoop)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_loop_factory(monkeypatch):
    monkeypatch.delenv("AIORUSTY_IFACE", raising=False)
    assert asyncio.run(_which_loop(), loop_factory=new_event_loop) is RustyEventLoop


@pytest.fixture
def restore_policy():
    yield
    asyncio.set_event_loop_policy(None)


def test_policy_and_get_event_loop(monkeypatch, restore_policy):
    monkeypatch.delenv("AIORUSTY_IFACE", raising=False)
    policy = install()
    assert isinstance(asyncio.get_event_loop_policy(), EventLoopPolicy)
    assert isinstance(policy, asyncio.DefaultEventLoopPolicy)
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, RustyEventLoop)
        asyncio.set_event_loop(loop)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert asyncio.get_event_loop() is loop

        async def inner():
            return asyncio.get_event_loop()
        assert loop.run_until_complete(inner()) is loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    assert asyncio.run(_which_loop()) is RustyEventLoop


def test_policy_passes_arguments(restore_policy):
    asyncio.set_event_loop_policy(EventLoopPolicy(interfaces=(), busy_poll_us=7))
    loop = asyncio.new_event_loop()
    try:
        assert loop._rusty_config.busy_poll_us == 7 and loop.stack is None
    finally:
        loop.close()


@unittest.skipUnless(stack_available(), "aiorusty.tcp.Stack is not merged yet")
def test_add_interface_at_run_time():
    from aiorusty.nic import Interface
    loop = new_event_loop(interfaces=[Interface.parse(STACK_IFACE)])
    try:
        assert loop.route("10.80.0.1") == "kernel"
        fds = set(loop._selector._device_fds)
        loop.add_interface("loopback,ip=10.80.0.1/24")
        assert loop.route("10.80.0.1") == "stack"
        assert len(loop._selector._device_fds) == len(fds) + 1      # the new device's fd is slept on
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.close()
    with pytest.raises(RuntimeError, match="no user-space stack"):
        plain = new_event_loop(interfaces=())
        try:
            plain.add_interface("loopback,ip=10.81.0.1/24")
        finally:
            plain.close()


async def _meet_on(loop, host):
    """A server and a client on `host` in one loop: (where the server's socket is, the echo)."""
    async def handle(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, host, 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"hi\n")
    echo = await reader.readline()
    writer.close()
    server.close()
    await server.wait_closed()
    return writer.get_extra_info("socket").fileno() < 0, echo


def test_localhost_stays_on_the_kernel_past_a_default_gateway():
    # A stack with a default gateway reaches every address but 127.0.0.0/8: 'localhost'
    # servers and clients both stay on the kernel, and meet.
    loop = new_event_loop(interfaces="loopback,ip=10.77.0.1/24,gw=10.77.0.254")
    try:
        assert loop.route("10.99.0.1") == "stack" and loop.route("127.0.0.1") == "kernel"
        assert loop.run_until_complete(_meet_on(loop, "localhost")) == (False, b"hi\n")
    finally:
        loop.close()


def test_localhost_on_a_stack_that_owns_127_0_0_1():
    # A stack given 127.0.0.1/8 (to run a foreign test suite on it) serves 'localhost'
    # for servers and clients alike.
    loop = new_event_loop(interfaces="loopback,ip=127.0.0.1/8")
    try:
        assert loop.route("127.0.0.1") == "stack"
        assert loop.run_until_complete(_meet_on(loop, "localhost")) == (True, b"hi\n")
    finally:
        loop.close()


def test_one_warning_when_servers_listen_on_the_kernel_only(caplog):
    # With interfaces configured, an app that binds only 127.0.0.1 is unreachable from the
    # stack's peers: said once, at the first such server; stack servers say nothing.
    loop = new_event_loop(interfaces=STACK_IFACE)
    try:
        async def main():
            servers = [await asyncio.start_server(lambda r, w: None, "10.77.0.1", 0)]
            assert not [r for r in caplog.records if r.name == "aiorusty.loop"]
            for _ in range(2):
                servers.append(await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0))
            for s in servers:
                s.close()
                await s.wait_closed()
        with caplog.at_level("WARNING", logger="aiorusty.loop"):
            loop.run_until_complete(main())
        warnings_ = [r.getMessage() for r in caplog.records if r.name == "aiorusty.loop"]
        assert len(warnings_) == 1 and "127.0.0.1" in warnings_[0] and "10.77.0.1" in warnings_[0], warnings_
    finally:
        loop.close()


def test_a_loop_whose_constructor_failed_is_quiet_when_collected():
    # A bad interface spec raises a clear error; the half-made loop must not add
    # "Exception ignored in BaseEventLoop.__del__" when it is collected.
    import gc
    seen = []
    old, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        with pytest.raises(InterfaceSpecError):
            RustyEventLoop(interfaces="nosuchdriver:x,ip=10.0.0.1/24")
        gc.collect()
    finally:
        sys.unraisablehook = old
    assert [repr(u.exc_value) for u in seen] == []
