"""Test bases for the loop tests: one test body, run on stock asyncio and on aiorusty.

A test body lives in a mixin (`class _TestUDP:`); concrete classes combine it
with a base (`class TestUDP_AIO(_TestUDP, AsyncioBase)`, `class
TestUDP_Rusty(_TestUDP, RustyBase)`), as uvloop's test suite does, so every
behaviour difference from asyncio fails a test.

Bases:
  AsyncioBase        asyncio.SelectorEventLoop, peers on the kernel loopback (127.0.0.1)
  RustyNoIfaceBase   RustyEventLoop with no interface (must be plain asyncio)
  RustyFakeBase      RustyEventLoop over a FakeStack: the RustySelector in the path, no traffic
  RustyBase          RustyEventLoop on two real stacks joined by an in-process cable
                     (open_pair): 10.77.0.1 and 10.77.0.2. (A single stack on the loopback
                     device cannot reach its own address yet: the stack has no local delivery.)

Teardown fails on exception-handler calls the test did not expect
(self.expect_exceptions(n) / self.handler_calls), closes the loop, and for
RustyBase checks the stack's socket table is empty (no leaked C sockets).
"""

import asyncio
import gc
import unittest

from aiorusty.loop import RustyEventLoop


class _LoopBase(unittest.TestCase):
    HOST = "127.0.0.1"
    PEER_HOST = "127.0.0.1"
    ON_STACK = False

    def new_loop(self):
        raise NotImplementedError

    def setUp(self):
        self.loop = self.new_loop()
        asyncio.set_event_loop(None)
        self.handler_calls = []
        self._expected_exceptions = 0
        self.loop.set_exception_handler(lambda loop, ctx: self.handler_calls.append(ctx))

    def expect_exceptions(self, n):
        self._expected_exceptions = n

    def run_loop(self, coro, timeout=10):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def tearDown(self):
        loop = self.loop
        try:
            if not loop.is_closed():
                loop.run_until_complete(loop.shutdown_asyncgens())
                for _ in range(3):
                    loop.run_until_complete(asyncio.sleep(0))
                self.check_leaks()
        finally:
            loop.close()
            gc.collect()
        if len(self.handler_calls) != self._expected_exceptions:
            self.fail(f"unexpected exception-handler calls: {self.handler_calls!r}")

    def check_leaks(self):
        pass


class AsyncioBase(_LoopBase):
    def new_loop(self):
        return asyncio.SelectorEventLoop()


class RustyNoIfaceBase(_LoopBase):
    def new_loop(self):
        loop = RustyEventLoop(interfaces=())
        assert loop.stack is None
        return loop


class RustyFakeBase(_LoopBase):
    BUSY_POLL_US = 100

    def new_loop(self):
        from ._fakestack import FakeStack
        self.fake = FakeStack()
        return RustyEventLoop(interfaces=(), stack=self.fake, busy_poll_us=self.BUSY_POLL_US)

    def tearDown(self):
        super().tearDown()
        self.fake.close()


def stack_available():
    try:
        from aiorusty.tcp import Stack  # noqa: F401
    except ImportError:
        return False
    return True


STACK_IFACE = "loopback,ip=10.77.0.1/24"


@unittest.skipUnless(stack_available(), "aiorusty.tcp.Stack is not merged yet")
class RustyBase(_LoopBase):
    """Two stacks joined by an in-process cable (open_pair), both polled by the loop under test:
    10.77.0.1 (HOST, the loop's main stack) and 10.77.0.2 (PEER_HOST). A destination is sent
    from the stack with a link towards it, so a client of HOST runs on the peer stack."""

    HOST = "10.77.0.1"
    PEER_HOST = "10.77.0.2"
    ON_STACK = True
    TRACE = False                       # decode HOST's frames to the aiorusty.trace logger
    HOST_STACK = {}                     # more Stack options for HOST's stack (stacks[0])
    PEER_STACK = {}                     # ... and for PEER_HOST's stack (stacks[1], the clients')

    def new_devices(self):
        """The two ends of the link (HOST's first); a test class may join them otherwise."""
        from aiorusty.nic import open_pair
        return open_pair(trace=self.TRACE)

    def new_loop(self):
        from aiorusty.tcp import Stack
        self.devices = self.new_devices()
        # Short MSL: TIME-WAIT ends within the test, so teardown can check that every
        # connection is gone.
        self.stacks = [Stack(seed=1, **{"tcp_msl_us": 2000, **self.HOST_STACK}),
                       Stack(seed=2, **{"tcp_msl_us": 2000, **self.PEER_STACK})]
        self.stacks[0].add_interface(self.devices[0], ip=self.HOST + "/24")
        self.stacks[1].add_interface(self.devices[1], ip=self.PEER_HOST + "/24")
        return RustyEventLoop(interfaces=(), stack=self.stacks)

    def check_leaks(self):
        import time
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(st.stats()["tcp_conns"] for st in self.stacks):
            self.loop.run_until_complete(asyncio.sleep(0.01))
        for st in self.stacks:
            stats = st.stats()
            if stats.get("sockets", 0) or stats.get("tcp_conns", 0):
                self.fail(f"stack sockets/connections still open after the test: "
                          f"{stats['sockets']} sockets, {stats['tcp_conns']} TCP connections")

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            for st in self.stacks:
                st.close()
            for dev in self.devices:
                dev.close()


def have_tcp():
    if not stack_available():
        return False
    from aiorusty.tcp import Stack
    return hasattr(Stack, "tcp_listen")


async def echo(reader, writer):
    """A streams echo server's handler: each chunk written back, drained, until EOF."""
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    writer.close()
    await writer.wait_closed()
